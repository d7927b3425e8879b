"""Chooses and prepares the fast float32 kernels of ``kernels_gemm_fast`` (or declines).

A fast kernel runs only where it is provably the same arithmetic as the generic one: every
product exact in float32, every accumulator format RNE and either binary32, fp16, or a signed
IEEE/FN-style format with subnormals whose values and round-to-odd resolution fit float32.
"""

from __future__ import annotations

import struct

import numpy as np

from ..formats import FloatFormat, Overflow, Rounding, Specials

__all__ = ["fast_run", "accumulator_kind"]

_F32_INF, _F32_NAN = 0x7F800000, 0x7FC00000


def _f32_bits(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def accumulator_kind(seq) -> tuple[int, tuple[int, ...]] | None:
    """(kind, kind-2 parameters) of a Sequential for the fast kernel, or None."""
    fmt: FloatFormat = seq.format
    if seq.rounding != Rounding.NEAREST_EVEN or fmt.radix != 2 or fmt.exponent_shift:
        return None
    emin, emax = fmt.binary_exponent_range
    m = fmt.mantissa_bits
    ieee = fmt.specials == Specials.IEEE and fmt.overflow == Overflow.INFINITY and fmt.subnormals
    if ieee and (m, emin, emax) == (23, -126, 127):
        return 0, (0, 0, 0, 0, 0)
    if ieee and (m, emin, emax) == (10, -14, 15):
        return 1, (0, 0, 0, 0, 0)
    ok = (m <= 21 and fmt.signed and fmt.zero and fmt.subnormals and fmt.negative_zero
          and emin - m - 2 >= -149 and emax <= 127
          and fmt.specials in (Specials.IEEE, Specials.FN, Specials.NONE))
    ovf = {Overflow.INFINITY: _F32_INF, Overflow.NAN: _F32_NAN}
    if not ok or fmt.overflow not in (Overflow.INFINITY, Overflow.NAN, Overflow.SATURATE):
        return None
    maxbits = _f32_bits(float(fmt.max))
    params = (23 - m, _f32_bits(float(fmt.min_normal)), maxbits, ovf.get(fmt.overflow, maxbits),
              _f32_bits(2.0 ** (emin - m + 23)))
    return 2, params


def _products_exact_f32(operands) -> bool:
    from .datapath import _significand_range
    if operands is None:
        return False
    (sa, la, ha), (sb, lb, hb) = (_significand_range(f) for f in operands)
    return sa + sb <= 24 and la + lb >= -149 and ha + hb <= 127


def _needs_twosum(operands, fmt: FloatFormat) -> bool:
    """Whether the float32 sum of a product and an accumulator value may round onto a midpoint
    of the accumulator grid (then it is rounded to odd first). With ``s`` product bits and ``m``
    accumulator mantissa bits, a misleading float32 sum needs a product or accumulator value
    spanning ``23 - m`` bits or more; ``s + m <= 22`` and ``m <= 10`` rule both out."""
    from .datapath import _significand_range
    sp = _significand_range(operands[0])[0] + _significand_range(operands[1])[0]
    return not (sp + fmt.mantissa_bits <= 22 and fmt.mantissa_bits <= 10)


def fast_run(a, b, c, out, chunk, inner, outer, operands) -> bool:
    """Run the fast kernel into ``out`` and return True, or return False (nothing done)."""
    if not _products_exact_f32(operands):
        return False
    kin = accumulator_kind(inner)
    kout = accumulator_kind(outer) if outer is not None else (0, (0, 0, 0, 0, 0))
    if kin is None or kout is None:
        return False
    from .kernels_gemm_fast import RB, fast_kernel
    m = a.shape[0]
    m4 = -(-m // RB) * RB
    a32 = np.zeros((m4, a.shape[1]), np.float32)
    a32[:m] = a
    b32 = np.ascontiguousarray(b, dtype=np.float32)
    cc = c if c is not None else np.zeros((1, 1))
    fast_kernel(a32, b32, cc, out, int(c is not None), kin[0], kin[1], kout[0], kout[1],
                int(chunk or 0), int(_needs_twosum(operands, inner.format)))
    return True

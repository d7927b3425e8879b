"""Chooses and prepares the fast float32 kernels of ``kernels_gemm_micro`` (or declines).

A fast kernel runs only where it is provably the same arithmetic as the generic one: every
product exact in float32 (judged from the operand formats, or for formats as wide as float32
from the operands' magnitude range: ``_product_range``; binary32 operands, whose products are
not, only into binary32 RNE steps, each one FMA: ``_fused_ok``), and every accumulator step
either RNE to binary32, fp16, or a signed
IEEE/FN-style format with subnormals whose values and round-to-odd resolution fit float32
(kind 4 where ``2^(emax + 1 + 23 - m)`` is a finite float32, kind 5 for float32's exponent
range, else kind 2), or
(kind 3, or kind 6 where kind 4's constants stay finite) any deterministic non-RNE mode to such
a format with at most 22 mantissa bits whose sums cannot overflow float32. On x86, inside a
register block, kinds 3 and 6 give way to their lazy forms 9 (bf16, tf32) and 10 (the others;
also RNE after short products, ``SHORT_PRODUCTS``). The round-to-odd fix
makes the float32 sum carry the exact sum's sign and sticky bit, so rounding it once more (to at
most 22 bits, 21 for round-to-nearest) equals rounding the exact sum (see
``kernels_gemm_micro``).
"""

from __future__ import annotations

import struct

import numpy as np

from ..formats import FloatFormat, Overflow, Rounding, Specials
from .kernels_gemm_fast import F16C_IMM, X86
from .llvm_round import magic_rne_ok
from .quantize import _f32_params

__all__ = ["fast_run", "accumulator_kind", "rne_kind"]

_F32_INF, _F32_NAN = 0x7F800000, 0x7FC00000


def _f32_bits(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def accumulator_kind(seq, inner: bool = False) -> tuple[int, tuple[int, ...]] | None:
    """(kind, parameters) of a Sequential step for the fast kernels, or None (generic path).
    ``inner``: the step runs inside a register block, where x86 hosts round fp16 toward zero,
    up and down through ``vcvtps2ph`` too (kind 1; ``kernels_gemm_fast.F16C_IMM``)."""
    fmt: FloatFormat = seq.format
    if fmt.radix != 2 or fmt.exponent_shift:
        return None
    emin, emax = fmt.binary_exponent_range
    m = fmt.mantissa_bits
    ieee = fmt.specials == Specials.IEEE and fmt.overflow == Overflow.INFINITY and fmt.subnormals
    like_f32 = (m <= 21 and fmt.signed and fmt.zero and fmt.subnormals and fmt.negative_zero
                and emin >= -126 and emax <= 127
                and fmt.specials in (Specials.IEEE, Specials.FN, Specials.NONE))
    f16 = ieee and (m, emin, emax) == (10, -14, 15)
    if f16 and inner and int(seq.rounding) in F16C_IMM and X86:
        return 1, (0,) * 9
    if seq.rounding == Rounding.STOCHASTIC:
        return _stochastic(seq, fmt, m, emin, emax) if inner else None
    if (ieee and (m, emin, emax) == (23, -126, 127) and inner and X86
            and seq.rounding in _HOST_MODES):
        return 8, (0,) * 9
    if seq.rounding != Rounding.NEAREST_EVEN:
        return _kind3(seq, fmt, m, emin, emax, inner)
    if ieee and (m, emin, emax) == (23, -126, 127):
        return 0, (0,) * 9
    if f16:
        return 1, (0,) * 9
    if not like_f32 or fmt.overflow not in (Overflow.INFINITY, Overflow.NAN, Overflow.SATURATE):
        return None
    return rne_kind(fmt)


def rne_kind(fmt: FloatFormat) -> tuple[int, tuple[int, ...]]:
    """(kind 4, 5 or 2, parameters) of RNE to ``fmt`` for a format ``accumulator_kind``
    accepts (see ``kernels_gemm_micro``)."""
    emin, emax = fmt.binary_exponent_range
    m = fmt.mantissa_bits
    ovf = {Overflow.INFINITY: _F32_INF, Overflow.NAN: _F32_NAN}
    maxbits = _f32_bits(float(fmt.max))
    cap = emax + 1 + 23 - m  # the largest magic constant kind 4 needs; it must be finite
    params = (23 - m, _f32_bits(float(fmt.min_normal)), maxbits, ovf.get(fmt.overflow, maxbits),
              _f32_bits(2.0 ** (emin - m + 23)), _f32_bits(2.0 ** cap) if cap <= 127 else 0, 0,
              0, 0)
    return (4 if cap <= 127 else 5 if emin == -126 else 2), params


#: Modes of binary32 steps inside a block that the host's own addition gives (kind 8; to odd
#: and nearest-away from the truncated sum and its remainder).
_HOST_MODES = (Rounding.TOWARD_ZERO, Rounding.UP, Rounding.DOWN, Rounding.TO_ODD,
               Rounding.NEAREST_AWAY)

_KIND3_MODES = (Rounding.NEAREST_AWAY, Rounding.TOWARD_ZERO, Rounding.UP, Rounding.DOWN,
                Rounding.TO_ODD)


def _kind3(seq, fmt, m, emin, emax, inner: bool = False):
    """Deterministic non-RNE modes through ``llvm_round.ROUNDERS``: the format must leave float32
    two bits below its finest quantum (one for directed modes), and fit float32's exponent
    range; ``fast_run`` keeps every sum finite in float32 (``emax <= 125`` and products below
    ``2^125``, or products below ``2^(emax - m)``, the gap between the largest value and
    ``2^(emax + 1)``). Inside a register block on x86, kind 6's formats take kind 10 and kind
    3's IEEE ones with float32's smallest normal kind 9 (their lazy forms)."""
    if seq.rounding not in _KIND3_MODES:
        return None
    if not _fits_directed(fmt, m, emin, emax, 2 if seq.rounding == Rounding.NEAREST_AWAY else 1,
                          127):
        return None
    kind = 6 if magic_rne_ok(m, emax, True) else 3
    if kind == 6 and inner and X86:
        kind = 10  # one magic addition in the block's host mode (kernels_gemm_magic)
    if (kind == 3 and X86 and emin == -126 and fmt.specials == Specials.IEEE
            and fmt.overflow == Overflow.INFINITY):
        kind = 9  # bf16, tf32: the lazy integer step (kernels_gemm_micro)
    return kind, tuple(int(v) for v in _f32_params(fmt, seq.rounding))


def _fits_directed(fmt, m: int, emin: int, emax: int, spare: int, emax_limit: int = 125
                   ) -> bool:
    """The format conditions of ``_kind3`` (and, with ``emax_limit=127``, of stochastic
    steps)."""
    return (m + spare <= 23 and fmt.signed and fmt.zero and fmt.subnormals and fmt.negative_zero
            and emin >= -126 and emax <= emax_limit
            and fmt.specials in (Specials.IEEE, Specials.FN, Specials.NONE))


def _stochastic(seq, fmt, m, emin, emax):
    """Kind 7 (``kernels_gemm_sr``) on x86 for ``_kind3``'s formats and those up to float32's
    exponent range (bf16, tf32; ``fast_run`` bounds their products so that no sum passes
    ``2^128``), where ambiguous lanes resolve exactly in float64 (``exact_resolution_ok``), and
    for IEEE binary32 (``round_binary32``: every lane from the exact error); its parameters
    are ``_f32_params`` followed by (random bits, stream key)."""
    from .kernels_gemm_sr import BINARY32_BITS, SR_KIND, exact_resolution_ok
    from .rng import seed_key
    nbits = 62 if seq.random_bits is None else int(seq.random_bits)
    binary32 = (fmt.specials == Specials.IEEE and fmt.overflow == Overflow.INFINITY
                and fmt.subnormals and (m, emin, emax) == (BINARY32_BITS, -126, 127))
    if not (X86 and (binary32 or _fits_directed(fmt, m, emin, emax, 1, 127)
                     and exact_resolution_ok(m, nbits))):
        return None
    params = tuple(int(v) for v in _f32_params(fmt, Rounding.STOCHASTIC))
    return SR_KIND, params + (nbits, int(seed_key(int(seq.seed))))


def _product_range(operands, a=None, b=None) -> tuple[int, int] | None:
    """(top, low): binary exponents with ``|p| < 2^top`` and every product a multiple of
    ``2^low``, if all products are exact in float32; else None. The operand formats decide
    where their ranges allow it (fp16, fp8, ...); formats as wide as float32 (bf16, tf32) are
    judged by the operands ``a`` and ``b`` themselves (``kernels_range``): a value in
    ``[2^e, 2^(e+1))`` with ``s`` significant bits is a multiple of ``2^(e + 1 - s)``."""
    from .datapath import _significand_range
    if operands is None:
        return None
    ranges = [_significand_range(f) for f in operands]
    (sa, la, ha), (sb, lb, hb) = ranges
    if sa + sb > 24:
        return None
    if not (la + lb >= -149 and ha + hb <= 127) and a is not None and b is not None:
        (la, ha), (lb, hb) = (_data_range(x, *r) for x, r in zip((a, b), ranges))
    return (ha + hb, la + lb) if la + lb >= -149 and ha + hb <= 127 else None


def _fused_ok(operands, product, kin: int, kout: int) -> bool:
    """Whether products float32 cannot hold (binary32 operands) may still run, fused: operand
    values are float32 values, products exact, and every step binary32 RNE (kind 0), which an
    FMA gives from the exact ``acc + a * b`` with one rounding, whatever the magnitudes."""
    from .datapath import _significand_range
    ranges = [_significand_range(f) for f in operands] if operands is not None else []
    return (len(ranges) == 2 and all(s <= 24 and lo >= -149 and hi <= 128 for s, lo, hi in ranges)
            and (product is None or product.format is None) and kin == 0 and kout == 0)


def _data_range(x, s: int, low: int, high: int) -> tuple[int, int]:
    """(lsb, msb) exponents of ``x``'s nonzero finite values, within the format's (``low``,
    ``high``); (0, 0) when there are none (every product is then zero or not finite)."""
    from .kernels_range import magnitude_range
    lo, hi = magnitude_range(np.ascontiguousarray(x))
    if lo == np.inf:
        return 0, 0
    return max(low, int(np.frexp(lo)[1]) - s), min(high, int(np.frexp(hi)[1]))


#: RNE steps to kind-4 formats that need the round-to-odd fix because a term may be cut off
#: in part (``_misleading``) take kind 10 (one magic addition toward zero from the round-to-odd
#: sum, ``kernels_gemm_magic``) on x86 when products have at most this many significant bits:
#: such short sums land on the accumulator's midpoints so often that kind 4's speculation
#: replays most spans (256x1024x256, 2 threads: e4m3fn and e5m2 products into e5m2 5.2 against
#: 2.1-2.5 GMAC/s; fp16 products, 22 bits, into e5m2 5.2 against 5.9, into e4m3fn 5.2 against
#: 4.5). Steps that can only lose an accumulator take kind 4's plan "lost" instead
#: (``kernels_gemm_micro.LOST``: e4m3fn products into e5m2 8.0 against 4.7-5.9 GMAC/s).
SHORT_PRODUCTS = 12


def _product_bits(operands) -> int:
    """Significant bits of the longest product of the two operand formats."""
    from .datapath import _significand_range
    return _significand_range(operands[0])[0] + _significand_range(operands[1])[0]


def _product_plan(product, operands, top: int, low: int):
    """How the fast kernels form the products of ``operands`` (exact in float32, below
    ``2^top``, multiples of ``2^low``) under ``product`` (a Product or None): (the block's
    ``prod`` step, its nine
    parameters or (), significant bits of a product as accumulated, its bound exponent, whether
    every product is finite); None where the kernels cannot round to the product format.

    A product format that holds every exact product (enough bits, its grid reaching the
    smallest product's last bit, the largest product below ``2^emax``, IEEE infinities) rounds
    nothing: the products stay exact. Otherwise fp16 takes ``vcvtps2ph``, RNE to bf16 and tf32
    kind 5's integer rounding, and every other format of the float32 quantiser
    ``llvm_round._emit`` (``kernels_gemm_micro.product_ir``); the
    rounded product has at most ``m + 1`` bits and stays below ``2^(top + 1)``, unless it
    overflows the format (``top > emax``): then it may be infinite or NaN, which every step but
    the stochastic one takes as the generic kernel does (IEEE arithmetic on the sum).
    """
    from .datapath import Sequential
    from .kernels_gemm_micro import NO_PRODUCT, PRODUCT_BITS, PRODUCT_EMIT, PRODUCT_F16
    from .quantize import _fast_f32
    sp = _product_bits(operands)
    if product is None or product.format is None:
        return NO_PRODUCT, (), sp, top, True
    fmt, mode = product.format, product.rounding
    if fmt.radix != 2 or fmt.exponent_shift:
        return None
    emin, emax = fmt.binary_exponent_range
    m = fmt.mantissa_bits
    ieee = fmt.specials == Specials.IEEE and fmt.overflow == Overflow.INFINITY
    if (ieee and fmt.subnormals and fmt.negative_zero and sp <= m + 1 and low >= emin - m
            and top <= emax):
        return NO_PRODUCT, (), sp, top, True
    if ieee and fmt.subnormals and (m, emin, emax) == (10, -14, 15) and (
            mode == Rounding.NEAREST_EVEN or X86 and int(mode) in F16C_IMM):
        prod, params = (PRODUCT_F16, int(mode)), (0,) * 9
    elif mode == Rounding.NEAREST_EVEN and _kind5(fmt):
        prod, params = (PRODUCT_BITS, 0), accumulator_kind(Sequential(format=fmt))[1]
    elif _fast_f32(fmt):
        prod, params = (PRODUCT_EMIT, int(mode)), tuple(int(v) for v in _f32_params(fmt, mode))
    else:
        return None
    finite = top <= emax or fmt.overflow == Overflow.SATURATE
    return prod, params, min(sp, m + 1), min(top + 1, emax + 1), finite


def _kind5(fmt: FloatFormat) -> bool:
    """Whether RNE to ``fmt`` is kind 5 (bf16, tf32: integer rounding alone)."""
    from .datapath import Sequential
    got = accumulator_kind(Sequential(format=fmt))
    return got is not None and got[0] == 5


def _needs_twosum(operands, fmt: FloatFormat, sp: int | None = None) -> bool:
    """Whether the float32 sum of a product and an accumulator value may round onto a midpoint
    of the accumulator grid although the exact sum is not one (then it is rounded to odd
    first). With ``s`` product bits and ``m`` accumulator mantissa bits:

    * a sum whose smaller term is partly cut off needs that term to span ``23 - m`` bits or
      more; ``s + m <= 22`` and ``m <= 10`` rule that out;
    * a nonzero accumulator value lost entirely under a product that is itself a midpoint
      (which takes ``s >= m + 2`` bits), e.g. ``-2^-11 + 30720`` into e5m2, whose float32 sum
      is the midpoint 30720 while the exact sum rounds down: ruled out when the smallest
      accumulator value, ``2^(emin - m)``, is at least half a float32 unit of every sum below
      the overflow threshold, ``emax - emin + m <= 22`` (two bits of margin).
    """
    return any(_misleading(operands, fmt, sp))


def _misleading(operands, fmt: FloatFormat, sp: int | None = None) -> tuple[bool, bool]:
    """``_needs_twosum``'s two cases: (a term may be partly cut off, an accumulator value may
    be lost entirely under a midpoint product)."""
    sp = _product_bits(operands) if sp is None else sp
    m = fmt.mantissa_bits
    emin, emax = fmt.binary_exponent_range
    cut = not (sp + m <= 22 and m <= 10)
    lost = sp >= m + 2 and emax - emin + m > 22
    return cut, lost


def _lean_flags(params, top: int, emax: int, c) -> int:
    """``LEAN_*`` flags of a kind-4 inner step: no upper clamp when no finite sum can reach
    ``2^(127 - sh)`` (products stay below ``2^top``, accumulator values below ``2^(emax + 1)``
    or the largest finite ``|c|``), no NaN select when an overflow becomes NaN anyway."""
    from .kernels_gemm_fast import LEAN_NO_CAP, LEAN_NO_NAN
    bound = max(top, emax + 1)
    if c is not None:
        cmax = float(np.max(np.abs(c), where=np.isfinite(c), initial=0.0))
        bound = max(bound, int(np.frexp(cmax)[1]))
    flags = LEAN_NO_CAP if bound + 1 + params[0] <= 127 else 0
    return flags | (LEAN_NO_NAN if params[3] == _F32_NAN else 0)


def fast_run(a, b, c, out, chunk, inner, outer, operands, k0: int = 0,
             ktot: int | None = None, product=None) -> bool:
    """Run the fast kernel into ``out`` and return True, or return False (then ``out`` holds
    nothing of use). ``k0``, ``ktot``: the global k of a's first column and K (stochastic
    rounding's stream indices); ``product`` the Product record (None: exact)."""
    kin = accumulator_kind(inner, inner=True)
    kout = accumulator_kind(outer) if outer is not None else (0, (0,) * 9)
    if kin is None or kout is None:
        return False
    rng = _product_range(operands, a, b)
    fused = rng is None and _fused_ok(operands, product, kin[0], kout[0])
    if fused:
        rng = (127, -149)  # (unused by kind 0: the FMA takes any product)
    elif rng is None:
        return False
    plan = _product_plan(product, operands, *rng)
    if plan is None:
        return False
    prod, g_prod, sp, top, finite = plan
    if fused:
        from .kernels_gemm_micro import FUSED_PRODUCT
        prod = FUSED_PRODUCT
    inner_emax = inner.format.binary_exponent_range[1]
    outer_emax = outer.format.binary_exponent_range[1] if outer is not None else 0
    if kout[0] in (3, 6, 9, 10) and max(inner_emax, outer_emax) > 125:
        return False  # a float32 sum of two accumulator values could overflow
    if kin[0] in (3, 6, 7, 8, 9, 10) and (top > 125 or inner_emax > 125
                                   and top > inner_emax - inner.format.mantissa_bits):
        # a float32 sum could overflow (truncated, it would stop at float32's largest value):
        # products must stay below the gap between the format's largest value and 2^128
        return False
    from .kernels_gemm_micro import LOST, NO_SR, block_shape, micro_kernel, pad, work_items
    directed = inner.rounding != Rounding.NEAREST_EVEN
    if kin[0] == 7 and not finite:
        return False  # (the stochastic step assumes finite products)
    cut, lost = _misleading(operands, inner.format, sp)
    twosum = int(kin[0] in (3, 6, 9, 10) or directed or cut or lost)
    step_in = (kin[0], twosum if kin[0] else 0, int(inner.rounding))
    g_in, sr = kin[1], NO_SR
    if kin[0] == 4 and lost and not cut:  # flag the lanes that lose an accumulator (LOST)
        step_in = (4, LOST, _lean_flags(kin[1], top, inner_emax, c))
    elif kin[0] == 4 and twosum and X86 and sp <= SHORT_PRODUCTS:
        step_in, g_in = (10, 1, 0), tuple(int(v) for v in _f32_params(inner.format,
                                                                        Rounding.NEAREST_EVEN))
    elif kin[0] == 4:
        step_in = (4, twosum, _lean_flags(kin[1], top, inner_emax, c))
    if kin[0] == 5:  # (RNE only) its mode field carries the shift, a constant in the kernel
        step_in = (5, twosum, kin[1][0])
    if kin[0] == 7:  # (mantissa bits, random bits) in the step; the key goes with the indices
        step_in, g_in = (7, inner.format.mantissa_bits, kin[1][9]), kin[1][:9]
        sr = (kin[1][10], int(k0), int(ktot if ktot is not None else a.shape[1]))
    step_out = (kout[0], 1 if kout[0] else 0, int(outer.rounding) if outer is not None else 0)
    # exact: the operands are float32 values (``_product_range``)
    a32, b32 = pad(a, b, *block_shape(step_in))
    cc = c if c is not None else np.zeros((1, 1))
    fails = np.zeros(work_items(a32, b32, step_in), np.uint32)
    micro_kernel(step_in, step_out, prod)(a32, b32, cc, out, int(c is not None),
                                          tuple(g_in) + g_prod, kout[1], int(chunk or 0), sr,
                                          fails)
    return not fails.any()

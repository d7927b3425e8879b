"""Fast float32 kernels for sequential and chunked accumulation with round-to-nearest-even.

Used when every product is exact in float32 and the accumulator formats hold float32 values
with at most 21 mantissa bits (or are binary32 itself). Each MAC is one LLVM intrinsic on 32-bit
lanes: the float32 sum, its exact error (TwoSum), a round-to-odd correction when the sum was
inexact (24 >= 11 + 2 bits, so the following rounding is that of the exact sum), then

* kind 0, binary32: the host's float32 addition (already RNE of the exact sum);
* kind 1, fp16: LLVM ``fptrunc`` to half and ``fpext`` back (``vcvtps2ph``: RNE, subnormals and
  overflow to inf);
* kind 2, any other format: integer RNE on the float32 bits, a magic-constant addition for the
  format's subnormals, and the overflow policy as a select.

Order: element ``(i, j)`` accumulates k ascending; rows are processed four at a time and columns
in tiles, which changes nothing per element.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ._jit import bits_f32, jit_inline, jit_parallel

__all__ = ["fast_kernel", "add_odd_f32", "round_f16", "round_bits_f32"]

RB = 4      # rows per work item (each b load feeds four accumulators)
TJ = 256    # columns per work item

_I32 = ir.IntType(32)
_F32 = ir.FloatType()


def _c(v: int) -> ir.Constant:
    return ir.Constant(_I32, v & 0xFFFFFFFF)


def _odd_sum(builder, acc, p):
    """float32 ``acc + p`` rounded to odd (IR): TwoSum, then nudge an inexact even result."""
    s = builder.fadd(acc, p)
    bp = builder.fsub(s, acc)
    err = builder.fadd(builder.fsub(acc, builder.fsub(s, bp)), builder.fsub(p, bp))
    sb = builder.bitcast(s, _I32)
    inexact = builder.fcmp_ordered("one", err, ir.Constant(_F32, 0.0))
    even = builder.icmp_unsigned("==", builder.and_(sb, _c(1)), _c(0))
    same = builder.icmp_signed(">=", builder.xor(builder.bitcast(err, _I32), sb), _c(0))
    delta = builder.select(same, _c(1), _c(-1))
    fix = builder.and_(inexact, even)
    return builder.add(sb, builder.select(fix, delta, _c(0)))


@intrinsic
def add_odd_f32(typingctx, acc, p):
    """``acc + p`` (float32) rounded to odd at 24 bits."""
    if acc != types.float32 or p != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(_odd_sum(builder, args[0], args[1]), _F32)

    return types.float32(types.float32, types.float32), codegen


@intrinsic
def round_f16(typingctx, x):
    """float32 -> half (RNE) -> float32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        h = builder.fptrunc(args[0], ir.HalfType())
        return builder.fpext(h, _F32)

    return types.float32(types.float32), codegen


@intrinsic
def round_bits_f32(typingctx, x, sh, minnorm, maxbits, ovf, magic):
    """RNE of float32 ``x`` to a format with ``23 - sh`` mantissa bits: ``minnorm`` the bits of
    its smallest normal, ``maxbits`` of its largest value, ``ovf`` the bits an overflow becomes,
    ``magic`` = 2^(emin - m + 23) for its subnormals."""
    i32 = types.int32
    if (x, sh, minnorm, maxbits, ovf, magic) != (types.float32, i32, i32, i32, i32, types.float32):
        return None

    def codegen(context, builder, sig, args):
        x, sh, minnorm, maxbits, ovf, magic = args
        b = builder.bitcast(x, _I32)
        sign = builder.and_(b, _c(0x80000000))
        a = builder.and_(b, _c(0x7FFFFFFF))
        unit = builder.shl(_c(1), sh)
        half_m1 = builder.sub(builder.lshr(unit, _c(1)), _c(1))
        lsb = builder.and_(builder.lshr(a, sh), _c(1))
        r = builder.and_(builder.add(builder.add(a, half_m1), lsb), builder.not_(
            builder.sub(unit, _c(1))))
        ax = builder.bitcast(a, _F32)
        sub = builder.bitcast(builder.fsub(builder.fadd(ax, magic), magic), _I32)
        r = builder.select(builder.icmp_unsigned("<", a, minnorm), sub, r)
        r = builder.select(builder.icmp_unsigned(">", r, maxbits), ovf, r)
        r = builder.select(builder.icmp_unsigned(">", a, _c(0x7F800000)), _c(0x7FC00000), r)
        return builder.bitcast(builder.or_(r, sign), _F32)

    return types.float32(types.float32, i32, i32, i32, i32, types.float32), codegen


@jit_inline
def add_round(acc, p, kind, twosum, g):
    """``round(acc + p)`` on float32 for accumulator kind 0/1/2 (``g``: kind-2 parameters as
    int64: sh, minnorm bits, max bits, overflow bits, magic bits). ``twosum=0`` where the float32
    sum cannot fall on a midpoint of the accumulator's grid unless it is exact."""
    if kind == 0:
        return acc + p
    s = add_odd_f32(acc, p) if twosum == 1 else acc + p
    if kind == 1:
        return round_f16(s)
    return round_bits_f32(s, np.int32(g[0]), np.int32(g[1]), np.int32(g[2]), np.int32(g[3]),
                          bits_f32(np.uint32(g[4])))


@jit_inline
def _span_kind(a, b, i0, j0, j1, k0, k1, acc, kind, twosum, g):
    """Rows i0..i0+3, columns j0..j1-1, k in [k0, k1): ``acc[r*TJ + j-j0] = round(acc + a*b)``.
    One row at a time over a contiguous column range: two arrays in the loop, so LLVM
    vectorises it (the b row stays in L1 for the four rows)."""
    w = j1 - j0
    for k in range(k0, k1):
        bk = b[k, j0:j1]
        for r in range(RB):
            ar = a[i0 + r, k]
            base = r * TJ
            for t in range(w):
                acc[base + t] = add_round(acc[base + t], ar * bk[t], kind, twosum, g)


@jit_inline
def _span(a, b, i0, j0, j1, k0, k1, acc, kind, twosum, g):
    # one call per constant (kind, twosum), so that each inner loop is branch-free
    if kind == 0:
        _span_kind(a, b, i0, j0, j1, k0, k1, acc, 0, 0, g)
    elif kind == 1 and twosum == 1:
        _span_kind(a, b, i0, j0, j1, k0, k1, acc, 1, 1, g)
    elif kind == 1:
        _span_kind(a, b, i0, j0, j1, k0, k1, acc, 1, 0, g)
    elif twosum == 1:
        _span_kind(a, b, i0, j0, j1, k0, k1, acc, 2, 1, g)
    else:
        _span_kind(a, b, i0, j0, j1, k0, k1, acc, 2, 0, g)


@jit_inline
def _fold_kind(acc, part, kind, g):
    for t in range(acc.size):
        acc[t] = add_round(acc[t], part[t], kind, 1, g)
        part[t] = np.float32(0.0)


@jit_inline
def _fold(acc, part, kind, g):
    """Outer step of chunking: ``acc = round(acc + part)``; part is reset to zero."""
    if kind == 0:
        _fold_kind(acc, part, 0, g)
    elif kind == 1:
        _fold_kind(acc, part, 1, g)
    else:
        _fold_kind(acc, part, 2, g)


@jit_parallel
def fast_kernel(a, b, c, out, has_c, kin, gin, kout, gout, chunk, twosum):
    """a float32 [M4, K] (M4 a multiple of 4), b float32 [K, N]; out float64 [M, N]."""
    m4, kk = a.shape
    n = b.shape[1]
    m = out.shape[0]
    ntiles = (n + TJ - 1) // TJ
    for w in prange((m4 // RB) * ntiles):
        i0 = (w // ntiles) * RB
        j0 = (w % ntiles) * TJ
        j1 = min(n, j0 + TJ)
        acc = np.zeros(RB * TJ, np.float32)
        if has_c == 1:
            for r in range(min(RB, m - i0)):
                for j in range(j0, j1):
                    acc[r * TJ + j - j0] = np.float32(c[i0 + r, j])
        if chunk <= 0:
            _span(a, b, i0, j0, j1, 0, kk, acc, kin, twosum, gin)
        else:
            part = np.zeros(RB * TJ, np.float32)
            for k0 in range(0, kk, chunk):
                _span(a, b, i0, j0, j1, k0, min(kk, k0 + chunk), part, kin, twosum, gin)
                _fold(acc, part, kout, gout)
        for r in range(min(RB, m - i0)):
            for j in range(j0, j1):
                out[i0 + r, j] = np.float64(acc[r * TJ + j - j0])

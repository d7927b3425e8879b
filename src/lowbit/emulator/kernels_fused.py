"""Numba kernels of the tensor-core block FMA (``FusedAccumulation``), bit-exact.

``decompose`` splits every operand once: ``exp = max(floor(log2|x|), emin)`` of its format, a
signed int64 significand (for the general path) and the value itself (zeros get ``ZERO_EXP`` so
they never win the exponent maximum). B arrives transposed, ``[N, K]``, so both operands stream
along K. The hardware path (truncating alignment) works on float64 holding exact integers: the
aligned addend is ``trunc(a b 2^(W - E_max))``; other alignments and a carry limit use int64.
Each output runs its own chain of blocks in ascending K, so results and event counts (integer
reductions) do not depend on the thread count.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ._jit import bits_f64, f64_bits, jit, jit_parallel

#: ``jit`` plus ``reassoc``, for the truncating block sums only: they add float64 integers below
#: 2^53, exact in any order, and the flag lets LLVM vectorise that reduction.
jit_sum = numba.njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc"})

ZERO_EXP = -(1 << 24)  #: exponent given to zero operands: below any real product exponent
TRUNCATE, NEAREST_EVEN, STICKY = range(3)  #: Alignment
CONTIGUOUS, INTERLEAVED = range(2)  #: Pattern
FRAME_BITS = 23  #: the model's I = P * 2^23 scaling and the binary32 frame of c
FRAME_EMIN = -126


class FusedParams(NamedTuple):
    """Everything the fused kernels need, as plain integers."""
    terms: int  #: products per block (per half block for the interleaved pattern)
    width: int  #: W = 23 + extra_bits, fraction bits of the aligned addends
    extra: int  #: extra_bits
    post: int  #: right shift (truncating) of each product magnitude, when W < m_a + m_b
    alignment: int
    carry: int  #: integer bits above the binary point of the sum (1 + carry_bits), -1: unlimited
    min_exp: int
    p: int  #: fraction bits of the result
    emin: int  #: output: exponent of the smallest normal binade
    emax: int  #: output: exponent of the largest binade
    rne: int  #: 1: block results rounded to nearest even, 0: toward zero
    subnormals: int  #: output subnormals kept (1) or flushed to zero (0)
    pattern: int


@jit
def pow2(e):
    """2.0**e for -1022 <= e <= 1023."""
    return bits_f64(np.uint64(e + 1023) << np.uint64(52))


def _unary(kind, emit):
    """A scalar intrinsic of type ``kind -> kind`` whose LLVM code is ``emit(builder, x)``."""
    @intrinsic
    def op(typingctx, x):
        if x != kind:
            return None
        return kind(kind), lambda context, builder, signature, args: emit(builder, args[0])
    return op


_ctlz = _unary(types.int64, lambda b, x: b.ctlz(x, ir.Constant(ir.IntType(1), 0)))
#: llvm.trunc.f64: rounds toward zero and vectorises (np.trunc is a libm call)
ftrunc = _unary(types.float64, lambda b, x: b.call(
    b.module.declare_intrinsic("llvm.trunc", [ir.DoubleType()]), [x]))


@jit
def bit_length(s):
    """Bit length of an int64 s >= 0."""
    return 64 - _ctlz(s)


@jit
def decompose(x, emin, emax, mant, maxval, pre, subnormals, sig, exp, val, bad):
    """Split each row of ``x`` into ``sig`` (signed, shifted left by ``pre``) and ``exp``;
    ``val`` is ``x`` with flushed subnormals (``subnormals == 0``) and non-finite values zeroed.

    ``bad[r]``: the first column of row ``r`` whose value is not exactly an operand of the
    format (-1 if none), or -2 for a row holding a NaN or an infinity."""
    rows, cols = x.shape
    for r in range(rows):  # serial: O(MK) beside the O(MNK) gemm, and no thread start-up
        bad[r] = -1
        for k in range(cols):
            v = x[r, k]
            a = abs(v)
            sig[r, k] = 0
            exp[r, k] = ZERO_EXP
            val[r, k] = 0.0
            if not (a <= maxval):
                if math.isfinite(v):
                    if bad[r] < 0:
                        bad[r] = k
                elif bad[r] == -1:
                    bad[r] = -2
                continue
            if a == 0.0:
                continue
            m, e = math.frexp(a)
            e = max(e - 1, emin)
            s = math.ldexp(a, mant - e)
            if s != math.floor(s) or e > emax:
                if bad[r] < 0:
                    bad[r] = k
                continue
            if e == emin and s < (1 << mant) and subnormals == 0:
                continue  # subnormal input flushed to zero
            q = np.int64(s) << pre
            sig[r, k] = -q if v < 0 else q
            exp[r, k] = e
            val[r, k] = v


@jit
def _align(m, sh, mode):
    """Magnitude ``m`` shifted right by ``sh`` >= 0 under the alignment ``mode``."""
    if sh > 62:
        kept = np.int64(0)
        rem_nonzero = m != 0
    else:
        kept = m >> sh
        rem_nonzero = (kept << sh) != m
    if mode == STICKY:
        return (kept << 1) | np.int64(rem_nonzero)
    if mode == NEAREST_EVEN and sh >= 1 and sh <= 62:
        rem = m - (kept << sh)
        half = np.int64(1) << (sh - 1)
        if rem > half or (rem == half and (kept & 1) == 1):
            kept += 1
    return kept


@jit
def exponent_c(c):
    """E_c of an accumulator value in the binary32 frame; ZERO_EXP for zero (excluded)."""
    if c == 0.0:
        return np.int64(ZERO_EXP)
    biased = np.int64((f64_bits(c) >> np.uint64(52)) & np.uint64(0x7FF))
    return max(biased - 1023, np.int64(FRAME_EMIN))


@jit
def block_general(sa, ea, sb, eb, i, j, k0, k1, c, prm):
    """As :func:`block_pair` for one output, any alignment and a carry limit, in int64."""
    top = exponent_c(c)
    for k in range(k0, k1):
        top = max(top, np.int64(ea[i, k] + eb[j, k]))
    top = max(top, prm.min_exp)
    mode = prm.alignment
    frac = prm.width + (1 if mode == STICKY else 0)
    s = np.int64(0)
    lost = 0
    for k in range(k0, k1):
        pr = sa[i, k] * sb[j, k]
        m = abs(pr) >> prm.post
        a = _align(m, top - (np.int64(ea[i, k]) + eb[j, k]), mode)
        lost += (pr != 0) & (a == 0)
        s += -a if pr < 0 else a
    if c != 0.0:
        ec = exponent_c(c)
        ic = np.int64(math.ldexp(abs(c), FRAME_BITS - ec))
        ic = ic << prm.extra if prm.extra >= 0 else ic >> -prm.extra
        a = _align(ic, top - ec, mode)
        s += -a if c < 0 else a
    over = 0
    if prm.carry >= 0:
        limit = np.int64(1) << (frac + prm.carry)
        if abs(s) >= limit:
            over = 1
            s = -(abs(s) & (limit - 1)) if s < 0 else s & (limit - 1)
    return float(s) * pow2(top - frac), lost, over


@jit
def round_int(s, lsb, p, emin, emax, rne, subnormals):
    """s 2^lsb rounded to ``p`` fraction bits: (negative, m, q, overflowed, flushed) for the
    value +-m 2^q; m == 0 is a zero (+0 for an exact zero sum), overflowed means +-inf."""
    neg = s < 0
    a = abs(s)
    if a == 0:
        return False, np.int64(0), np.int64(0), 0, 0
    e = lsb + bit_length(a) - 1
    if e < emin and subnormals == 0:
        return neg, np.int64(0), np.int64(0), 0, 1
    q = max(e, emin) - p
    sh = q - lsb
    if sh <= 0:
        m = a << (-sh)
    elif sh > 62:
        m = np.int64(0)
    else:
        m = a >> sh
        if rne == 1:
            rem = a - (m << sh)
            half = np.int64(1) << (sh - 1)
            if rem > half or (rem == half and (m & 1) == 1):
                m += 1
    if m == 0:
        return neg, m, q, 0, 1
    if q + bit_length(m) - 1 > emax:
        return neg, m, q, 1, 0
    return neg, m, q, 0, 0


@jit
def round_value(v, err, rne, prm):
    """``v + err`` rounded once to the block-result format: (value, overflowed, flushed). ``v`` is
    a float64 and ``err`` its exact remainder (0 when v is exact; |err| <= ulp(v) / 2)."""
    if v == 0.0:
        return 0.0, 0, 0
    bits = f64_bits(v)
    e = np.int64((bits >> np.uint64(52)) & np.uint64(0x7FF)) - 1023
    sig = np.int64(bits & np.uint64((1 << 52) - 1)) | (np.int64(1) << 52)
    sig = 2 * sig + (0 if err == 0.0 else (1 if (err > 0) == (v > 0) else -1))  # exact side
    neg, m, q, o, f = round_int(-sig if v < 0 else sig, e - 53, prm.p, prm.emin, prm.emax, rne,
                                prm.subnormals)
    if o:
        return (-np.inf if neg else np.inf), 1, 0
    r = float(m) * pow2(q) if m != 0 else 0.0
    return (-r if neg else r), 0, f


@jit
def add_rne(x, y, prm):
    """x + y (finite) rounded once to nearest even: TwoSum gives the exact remainder."""
    s = x + y
    t = s - x
    return round_value(s, (x - (s - t)) + (y - t), 1, prm)


@jit
def bfma(va, sa, ea, vb, sb, eb, i, j, k0, k1, c, prm):
    """One block FMA of row i of A and row j of B^T, rounded: (value, overflowed, flushed, lost)."""
    if not math.isfinite(c):
        return c, 0, 0, 0  # an overflowed accumulator stays infinite (products are finite)
    if prm.alignment == TRUNCATE and prm.carry < 0:  # (the pair kernel, computing one output)
        v, _, lost, _ = block_pair(va, ea, vb, eb, i, j, j, k0, k1, c, c, prm)
        over = 0
    else:
        v, lost, over = block_general(sa, ea, sb, eb, i, j, k0, k1, c, prm)
    r, o, f = round_value(v, 0.0, prm.rne, prm)
    return r, o + over, f, lost


@jit
def special(a, b, i, j, c):
    """Result when an operand or c is NaN or infinite: IEEE products, then NaN > mixed inf > inf."""
    nan = not (c == c)
    pos = c == np.inf
    neg = c == -np.inf
    for k in range(a.shape[1]):
        p = a[i, k] * b[j, k]
        nan |= not (p == p)
        pos |= p == np.inf
        neg |= p == -np.inf
    if nan or (pos and neg):
        return np.nan
    return np.inf if pos else (-np.inf if neg else 0.0)


@jit
def dot(va, sa, ea, vb, sb, eb, i, j, c, prm):
    """One output element: blocks chained in ascending K; (value, overflows, flushes, lost).
    ``INTERLEAVED``: K is already reordered so that each block of 2 * terms is [half 1, half 2]."""
    kk = va.shape[1]
    t = prm.terms
    acc = c
    over = flush = lost = 0
    step = t if prm.pattern == CONTIGUOUS else 2 * t
    for k0 in range(0, kk, step):
        if prm.pattern == CONTIGUOUS:
            acc, o, f, n = bfma(va, sa, ea, vb, sb, eb, i, j, k0, min(k0 + t, kk), acc, prm)
        else:
            d1, o1, f1, n1 = bfma(va, sa, ea, vb, sb, eb, i, j, k0, k0 + t, 0.0, prm)
            d2, o2, f2, n2 = bfma(va, sa, ea, vb, sb, eb, i, j, k0 + t, k0 + 2 * t, d1, prm)
            acc, o3, f3 = add_rne(d2, acc, prm) if math.isfinite(d2) else (d2, 0, 0)
            o, f, n = o1 + o2 + o3, f1 + f2 + f3, n1 + n2
        over += o
        flush += f
        lost += n
        if not math.isfinite(acc):
            break
    return acc, over, flush, lost


@jit_sum
def block_pair(va, ea, vb, eb, i, j0, j1, k0, k1, c0, c1, prm):
    """Exact aligned sums (float64) of one block under truncation for outputs (i, j0), (i, j1):
    (v0, v1, lost0, lost1). The model's ``floor(floor(I 2^extra_bits) / 2^(E_max - E_i))`` is
    ``trunc(a b 2^(W - E_max))`` (nested floors of power-of-two quotients compose); addends and
    sums are integers below 2^53. Two chains interleave so that the CPU overlaps their latencies."""
    t0 = exponent_c(c0)
    t1 = exponent_c(c1)
    for k in range(k0, k1):
        e = ea[i, k]
        t0 = max(t0, np.int64(e + eb[j0, k]))
        t1 = max(t1, np.int64(e + eb[j1, k]))
    t0 = max(t0, prm.min_exp)
    t1 = max(t1, prm.min_exp)
    sc0 = pow2(prm.width - t0)
    sc1 = pow2(prm.width - t1)
    s0 = ftrunc(c0 * sc0)
    s1 = ftrunc(c1 * sc1)
    n0 = n1 = 0
    for k in range(k0, k1):
        x = va[i, k]
        p0 = x * vb[j0, k]
        p1 = x * vb[j1, k]
        x0 = ftrunc(p0 * sc0)
        x1 = ftrunc(p1 * sc1)
        n0 += (p0 != 0.0) & (x0 == 0.0)
        n1 += (p1 != 0.0) & (x1 == 0.0)
        s0 += x0
        s1 += x1
    return s0 * pow2(t0 - prm.width), s1 * pow2(t1 - prm.width), n0, n1


@jit
def dot_pair(va, ea, vb, eb, i, j0, j1, c0, c1, prm):
    """Outputs (i, j0) and (i, j1), contiguous blocks, truncating alignment, no carry limit:
    (v0, v1, overflows, flushes, lost) with the events of (i, j1) counted only if j1 != j0."""
    kk = va.shape[1]
    a0, a1 = c0, c1
    over = flush = lost = 0
    for k0 in range(0, kk, prm.terms):
        v0, v1, n0, n1 = block_pair(va, ea, vb, eb, i, j0, j1, k0, min(k0 + prm.terms, kk),
                                    a0, a1, prm)
        n0, n1 = (n0 if math.isfinite(a0) else 0), (n1 if math.isfinite(a1) else 0)
        a0, o0, f0 = round_value(v0, 0.0, prm.rne, prm) if math.isfinite(a0) else (a0, 0, 0)
        a1, o1, f1 = round_value(v1, 0.0, prm.rne, prm) if math.isfinite(a1) else (a1, 0, 0)
        if j1 == j0:
            o1, f1, n1 = 0, 0, 0
        over += o0 + o1
        flush += f0 + f1
        lost += n0 + n1
    return a0, a1, over, flush, lost


@jit
def one(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, i, j, prm):
    """Output (i, j) alone (specials, general alignments): (value, overflows, flushes, lost)."""
    cij = c[i, j]
    if bad_a[i] == -2 or bad_b[j] == -2 or not math.isfinite(cij):
        return special(a, bt, i, j, cij), 0, 0, 0
    return dot(va, sa, ea, vb, sb, eb, i, j, cij, prm)


@jit
def work_item(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, prm, out, idx):
    """Outputs (i, j0) and (i, j0 + 1) of work item ``idx``: (overflows, flushes, lost)."""
    fast = prm.pattern == CONTIGUOUS and prm.alignment == TRUNCATE and prm.carry < 0
    n = sb.shape[0]
    h = (n + 1) // 2
    i = idx // h
    j0 = 2 * (idx - i * h)
    j1 = min(j0 + 1, n - 1)
    plain = bad_a[i] != -2 and bad_b[j0] != -2 and bad_b[j1] != -2 and \
        math.isfinite(c[i, j0]) and math.isfinite(c[i, j1])
    if fast and plain:
        v0, v1, o, f, s = dot_pair(va, ea, vb, eb, i, j0, j1, c[i, j0], c[i, j1], prm)
    else:
        v0, o, f, s = one(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, i, j0, prm)
        v1, o1, f1, s1 = one(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, i, j1, prm)
        if j1 != j0:
            o, f, s = o + o1, f + f1, s + s1
    out[i, j0] = v0
    out[i, j1] = v1
    return o, f, s


@jit_parallel
def gemm_fused(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, prm, out):
    """out[i, j] = fused dot of row i of A with row j of B^T from c[i, j]: work items are column
    pairs, each output its own chain of blocks. Returns (overflows, flushes, lost)."""
    over = flush = lost = 0
    for idx in prange(sa.shape[0] * ((sb.shape[0] + 1) // 2)):
        o, f, s = work_item(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, prm, out, idx)
        over += o
        flush += f
        lost += s
    return over, flush, lost


@jit
def gemm_fused_serial(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, prm, out):
    """:func:`gemm_fused` on the calling thread (small problems: no thread start-up)."""
    over = flush = lost = 0
    for idx in range(sa.shape[0] * ((sb.shape[0] + 1) // 2)):
        o, f, s = work_item(va, sa, ea, vb, sb, eb, a, bt, c, bad_a, bad_b, prm, out, idx)
        over += o
        flush += f
        lost += s
    return over, flush, lost

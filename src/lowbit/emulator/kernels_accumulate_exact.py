"""Numba kernels for exact (Kulisch), integer and binary (XNOR-popcount) accumulation.

Kulisch: every float64 term is added into a fixed-point accumulator of 32-bit limbs (held in
int64 with lazy carries) covering every float64 bit position plus 64 carry bits; the exact sum is
rounded once: its top 53 bits are rounded to odd with a sticky bit, then ``quantize_one`` rounds
that to the target (correct for targets of at most 51 significant bits).
"""

from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import intrinsic

from ._jit import f64_bits, jit_inline, jit_parallel
from .kernels_accumulate import count_step
from .kernels_float import pow2, quantize_one

__all__ = ["exact_kernel", "integer_kernel", "pack_signs", "xnor_kernel", "popcount64"]

NLIMBS = 68  # 68 * 32 = 2176 >= 1074 + 1024 + 64 bit positions
LOW32 = np.uint64(0xFFFFFFFF)
FRAC = np.uint64((1 << 52) - 1)
IMPLICIT = np.uint64(1 << 52)
U0 = np.uint64(0)
U1 = np.uint64(1)


@intrinsic
def popcount64(typingctx, x):
    """LLVM ``ctpop`` on a uint64 (one ``popcnt`` / ``vpopcntq`` instruction)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@jit_inline
def limbs_add(limbs, x):
    """Add the float64 ``x`` (finite) exactly into ``limbs``."""
    b = f64_bits(x)
    ebits = np.int64((b >> np.uint64(52)) & np.uint64(0x7FF))
    frac = b & FRAC
    if ebits == 0:
        sig, pos = frac, np.int64(0)
    else:
        sig, pos = frac | IMPLICIT, ebits - 1
    if sig == U0:
        return
    li = pos >> 5
    sh = np.uint64(pos & 31)
    p0 = (sig & ((U1 << (np.uint64(32) - sh)) - U1)) << sh
    rest = sig >> (np.uint64(32) - sh)
    v0, v1, v2 = np.int64(p0), np.int64(rest & LOW32), np.int64(rest >> np.uint64(32))
    if (b >> np.uint64(63)) != U0:
        v0, v1, v2 = -v0, -v1, -v2
    limbs[li] += v0
    limbs[li + 1] += v1
    limbs[li + 2] += v2


@jit_inline
def limbs_normalize(limbs):
    """Propagate carries: limbs 0..n-2 in [0, 2^32), the top limb signed."""
    for t in range(limbs.size - 1):
        carry = limbs[t] >> 32
        limbs[t] -= carry << 32
        limbs[t + 1] += carry


@jit_inline
def _bit_length(v):
    n = 0
    while v != U0:
        v >>= U1
        n += 1
    return n


@jit_inline
def limbs_to_odd(limbs):
    """The exact sum held in ``limbs`` rounded to odd at 53 bits, as a float64."""
    limbs_normalize(limbs)
    neg = limbs[limbs.size - 1] < 0
    if neg:
        for t in range(limbs.size):
            limbs[t] = -limbs[t]
        limbs_normalize(limbs)
    top, nb, lsb, sticky = U0, 0, 0, False
    for t in range(limbs.size - 1, -1, -1):
        limb = np.uint64(limbs[t])
        if nb == 0:
            if limb != U0:
                top, nb, lsb = limb, _bit_length(limb), 32 * t
        elif nb <= 30:
            top, nb, lsb = (top << np.uint64(32)) | limb, nb + 32, 32 * t
        else:
            take = np.uint64(62 - nb)
            top = (top << take) | (limb >> (np.uint64(32) - take))
            sticky = sticky or (limb & ((U1 << (np.uint64(32) - take)) - U1)) != U0
            lsb = 32 * t + 32 - np.int64(take)
            for u in range(t):
                sticky = sticky or limbs[u] != 0
            nb = 62
            break
    if nb == 0:
        return 0.0
    if nb > 53:
        d = np.uint64(nb - 53)
        sticky = sticky or (top & ((U1 << d) - U1)) != U0
        top >>= d
        lsb += nb - 53
    if sticky:
        top |= U1
    e = lsb - 1074
    v = np.float64(top)
    if e > 900:
        v = v * pow2(e - 900) * pow2(900)
    elif e < -1000:
        v = v * pow2(e + 100) * pow2(-100)
    else:
        v = v * pow2(e)
    return -v if neg else v


@jit_parallel
def exact_kernel(a, bt, c, out, has_c, p, maxval, minval, mode, counts, count):
    """``out[i,j] = round(c[i,j] + sum_k a[i,k]*bt[j,k])`` with one rounding; NaN/inf propagate
    by float64 arithmetic."""
    m, kk = a.shape
    n = bt.shape[0]
    for i in prange(m):
        limbs = np.zeros(NLIMBS, np.int64)
        cnt = np.zeros(4, np.int64)
        for j in range(n):
            limbs[:] = 0
            special = 0.0
            if has_c == 1:
                if c[i, j] - c[i, j] != 0.0:
                    special += c[i, j]
                else:
                    limbs_add(limbs, c[i, j])
            for k in range(kk):
                t = a[i, k] * bt[j, k]
                if t - t != 0.0:
                    special += t
                else:
                    limbs_add(limbs, t)
            if special != 0.0 or special != special:
                out[i, j] = quantize_one(special, p, maxval, minval, mode, U0, 62)
                continue
            s = limbs_to_odd(limbs)
            r = quantize_one(s, p, maxval, minval, mode, U0, 62)
            if count == 1:
                count_step(cnt, s, 0.0, 0.0, r, maxval)
            out[i, j] = r
        for t in range(4):
            counts[i, t] += cnt[t]


@jit_parallel
def integer_kernel(a, b, c, out, has_c, bits, wrap, counts, count):
    """Integer MACs ``acc = wrap_or_saturate(acc + a[i,k]*b[k,j])`` in a ``bits``-wide register."""
    m, kk = a.shape
    n = b.shape[1]
    qmin = -(np.int64(1) << np.int64(bits - 1))
    qmax = -qmin - 1
    mask = (np.int64(1) << np.int64(bits)) - 1
    for i in prange(m):
        acc = np.zeros(n, np.int64)
        if has_c == 1:
            for j in range(n):
                acc[j] = c[i, j]
        events = 0
        for k in range(kk):
            aik = a[i, k]
            for j in range(n):
                v = acc[j] + aik * b[k, j]
                if wrap == 1:
                    w = ((v - qmin) & mask) + qmin
                else:
                    w = min(max(v, qmin), qmax)
                if count == 1 and w != v:
                    events += 1
                acc[j] = w
        for j in range(n):
            out[i, j] = np.float64(acc[j])
        counts[i, 1] += events


@jit_parallel
def pack_signs(x, words):
    """Rows of +-1 values packed into uint64 words: bit ``k % 64`` of word ``k // 64`` is 1 for
    +1 (``x >= 0``); padding bits are 0."""
    m, kk = x.shape
    w = words.shape[1]
    for i in prange(m):
        for t in range(w):
            acc = U0
            for u in range(min(64, kk - 64 * t)):
                if x[i, 64 * t + u] >= 0.0:
                    acc |= U1 << np.uint64(u)
            words[i, t] = acc


@jit_parallel
def xnor_kernel(pa, pb, kk, c, out, has_c):
    """``out[i,j] = c + 2*popcount(xnor(pa[i], pb[j])) - K`` (padding corrected)."""
    m, w = pa.shape
    n = pb.shape[0]
    pad = 64 * w - kk
    for i in prange(m):
        for j in range(n):
            s = U0
            for t in range(w):
                s += popcount64(~(pa[i, t] ^ pb[j, t]))
            dot = 2 * (np.int64(s) - pad) - kk
            out[i, j] = np.float64(dot) + (c[i, j] if has_c == 1 else 0.0)

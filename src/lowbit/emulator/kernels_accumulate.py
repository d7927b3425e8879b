"""Generic numba kernels for float accumulation: sequential and chunked, any format and mode.

Order: output element ``(i, j)`` accumulates ``k = 0, 1, ..., K-1``; rows are spread over threads,
and within a row the ``N`` accumulators advance together (k outer, j inner), so each element's
arithmetic is the same whatever the thread count.

Each step computes ``acc + p`` exactly or, where float64 cannot hold it, rounded to odd at 53 bits
(the sum's exact sign and sticky information survive), then rounds once with the format kernel
``quantize_one``: round-to-odd at 53 bits followed by any rounding to at most 51 bits equals the
rounding of the exact sum.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from ._jit import bits_f64, f64_bits, jit_inline, jit_parallel
from .kernels_float import STOCHASTIC, U0, U1, quantize_one
from .rng import counter_bits

__all__ = ["Rounder", "add_odd", "add_round", "round_value", "count_step", "chunked_kernel"]


class Rounder(NamedTuple):
    """One rounding step as the kernels see it (built by ``kernels_accumulate_api``): the
    fields of ``FloatKernelParams`` (so that it serves as ``p`` for ``quantize_one``; numba's
    parallel lowering rejects nested tuples) followed by the step's own."""

    mantissa_bits: int
    emin: int
    emax: int
    max_significand: int
    subnormals: int
    zero: int
    signed: int
    has_inf: int
    has_nan: int
    negative_zero: int
    overflow: int
    bits: int
    bias: int
    nan_code: int
    inf_code: int
    specials: int
    maxval: float
    minval: float
    mode: int
    key: np.uint64
    nbits: int
    wide: int  #: 1: binary64 with RNE, the host's own addition


@jit_inline
def add_odd(x, y):
    """``x + y`` exactly if float64 holds it, else rounded to odd (53 bits).

    Branch-free (selects only), so that the GEMM loops vectorise: the TwoSum error ``err``
    decides whether an even last bit steps one unit away from or toward zero."""
    s = x + y
    bp = s - x
    err = (x - (s - bp)) + (y - bp)
    b = f64_bits(s)
    away = bits_f64(b + U1)  # |s| one unit larger: the exact sum lies beyond s
    toward = bits_f64(b - U1)
    fixed = away if (err > 0.0) == (s > 0.0) else toward
    fix = (err != 0.0) & ((b & U1) == U0) & (s - s == 0.0)  # inf or NaN: s as it is
    return fixed if fix else s


@jit_inline
def round_mode(x, r, mode, index):
    """``x`` (already round-to-odd or exact) rounded by the step ``r`` under ``mode`` (equal to
    ``r.mode``; a constant at specialised call sites); ``index`` keys stochastic rounding."""
    if r.wide == 1:
        return x
    rnd = U0
    if mode == STOCHASTIC:
        rnd = counter_bits(r.key, np.uint64(index))
    return quantize_one(x, r, r.maxval, r.minval, mode, rnd, r.nbits)


@jit_inline
def round_value(x, r, index):
    return round_mode(x, r, r.mode, index)


@jit_inline
def add_round_mode(acc, p, r, mode, index):
    """``round(acc + p)``, and the (round-to-odd) exact sum it rounded."""
    if r.wide == 1:
        s = acc + p
        return s, s
    s = add_odd(acc, p)
    return round_mode(s, r, mode, index), s


@jit_inline
def add_round(acc, p, r, index):
    return add_round_mode(acc, p, r, r.mode, index)


@jit_inline
def count_step(cnt, exact, acc, p, result, maxval):
    """Add this step's events into ``cnt`` (overflows, saturations, flushes, lost)."""
    if exact != 0.0 and result == 0.0:
        cnt[2] += 1
    if abs(exact) > maxval and exact - exact == 0.0:
        if result - result == 0.0:
            cnt[1] += 1
        else:
            cnt[0] += 1
    if p != 0.0 and acc != 0.0 and result == acc:
        cnt[3] += 1


@jit_inline
def _product(x, y, pr, has_prod, cnt, count):
    p = x * y
    if has_prod == 1:
        q = round_value(p, pr, 0)
        if count == 1:
            count_step(cnt, p, 0.0, 0.0, q, pr.maxval)
        return q
    return p


@jit_inline
def _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, mode, row0, ktot, cnt, count):
    """k = k1..k2-1 for every j of row i: ``acc[j] = round(acc[j] + a[i,k]*b[k,j])``."""
    if has_prod == 0 and count == 0 and r.wide == 0:
        _mac_span_plain(a, b, i, k1, k2, kg0, acc, r, mode, row0, ktot)
        return
    n = acc.size
    for k in range(k1, k2):
        aik = a[i, k]
        for j in range(n):
            p = _product(aik, b[k, j], pr, has_prod, cnt, count)
            old = acc[j]
            new, s = add_round_mode(old, p, r, mode, (row0 + j) * ktot + kg0 + k)
            if count == 1:
                count_step(cnt, s, old, p, new, r.maxval)
            acc[j] = new


@jit_inline
def _mac_span_plain(a, b, i, k1, k2, kg0, acc, r, mode, row0, ktot):
    """``_mac_span`` without a product rounding, counters or host additions (the common case):
    one flat loop body, ``quantize_one`` inlined with the constant ``mode``, so that the ``j``
    loop vectorises."""
    n = acc.size
    key, nbits, maxval, minval = r.key, r.nbits, r.maxval, r.minval
    for k in range(k1, k2):
        aik = a[i, k]
        base = row0 * ktot + kg0 + k
        for j in range(n):
            s = add_odd(acc[j], aik * b[k, j])
            rnd = U0
            if mode == STOCHASTIC:
                rnd = counter_bits(key, np.uint64(base + j * ktot))
            acc[j] = quantize_one(s, r, maxval, minval, mode, rnd, nbits)


@jit_inline
def _mac_row(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, row0, ktot, cnt, count):
    # one call per constant mode, so that each loop is specialised
    m = r.mode
    if m == 0:
        _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, 0, row0, ktot, cnt, count)
    elif m == 1:
        _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, 1, row0, ktot, cnt, count)
    elif m == 2:
        _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, 2, row0, ktot, cnt, count)
    elif m == 3:
        _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, 3, row0, ktot, cnt, count)
    elif m == 4:
        _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, 4, row0, ktot, cnt, count)
    elif m == 5:
        _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, 5, row0, ktot, cnt, count)
    else:
        _mac_span(a, b, i, k1, k2, kg0, acc, pr, has_prod, r, 6, row0, ktot, cnt, count)


@jit_parallel
def chunked_kernel(a, b, c, out, has_c, pr, has_prod, inner, outer, chunk, k0, ktot, counts,
                   count):
    """Sequential (``chunk <= 0``: ``inner`` from ``c``) or chunked accumulation into ``out``.

    Chunks start at a's first column (a K-slice of a promoted or scaled accumulation is a fresh
    accumulation); ``k0`` is the global k of that column, and stochastic indices are global:
    product k of element e uses ``e * ktot + k0 + k``, the outer step of the chunk starting at
    column k uses the outer stream at the same index.
    """
    m, kk = a.shape
    n = b.shape[1]
    for i in prange(m):
        cnt = np.zeros(4, np.int64)
        acc = np.zeros(n)
        if has_c == 1:
            for j in range(n):
                acc[j] = c[i, j]
        row0 = i * n
        if chunk <= 0:
            _mac_row(a, b, i, 0, kk, k0, acc, pr, has_prod, inner, row0, ktot, cnt, count)
        else:
            part = np.zeros(n)
            k = 0
            while k < kk:
                stop = min(kk, k + chunk)
                part[:] = 0.0
                _mac_row(a, b, i, k, stop, k0, part, pr, has_prod, inner, row0, ktot, cnt, count)
                for j in range(n):
                    old = acc[j]
                    new, s = add_round(old, part[j], outer, (row0 + j) * ktot + k0 + k)
                    if count == 1:
                        count_step(cnt, s, old, part[j], new, outer.maxval)
                    acc[j] = new
                k = stop
        for j in range(n):
            out[i, j] = acc[j]
        for t in range(4):
            counts[i, t] += cnt[t]


@jit_parallel
def add_partial_kernel(acc, part, sa, sb, has_scale, r, q, nq, counts, count):
    """``acc = round(acc + round(part * round(sa[i] * sb[j])))`` in place (scales optional);
    stochastic index of element ``e`` is ``e * nq + q`` (the scale products use ``+ 0``)."""
    m, n = acc.shape
    for i in prange(m):
        cnt = np.zeros(4, np.int64)
        for j in range(n):
            e = (i * n + j) * nq + q
            t = part[i, j]
            if has_scale == 1:
                s = round_value(sa[i] * sb[j], r, e)
                t = round_value(t * s, r, e)
            old = acc[i, j]
            new, s2 = add_round(old, t, r, e)
            if count == 1:
                count_step(cnt, s2, old, t, new, r.maxval)
            acc[i, j] = new
        for t2 in range(4):
            counts[i, t2] += cnt[t2]


@jit_parallel
def round_kernel(x, out, r, counts, count):
    """Elementwise ``out = round(x)`` (the output rounding)."""
    m, n = x.shape
    for i in prange(m):
        cnt = np.zeros(4, np.int64)
        for j in range(n):
            v = round_value(x[i, j], r, i * n + j)
            if count == 1:
                count_step(cnt, x[i, j], 0.0, 0.0, v, r.maxval)
            out[i, j] = v
        for t in range(4):
            counts[i, t] += cnt[t]

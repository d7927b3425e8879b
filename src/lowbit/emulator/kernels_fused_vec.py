"""Vectorised kernels of the tensor-core block FMA: tiles of outputs at a time, bit-exact.

Every output is a serial chain over K (a block's alignment depends on the previous rounded
accumulator), so instead of walking one chain at a time these kernels hold the state of a strip
of outputs ``(i, j0 .. j0 + n)`` in arrays (accumulator, block exponent maximum, scale, partial
sum) and make every inner loop run over the strip, which LLVM vectorises. They cover the hardware
path: truncating alignment and no carry limit, contiguous or interleaved blocks. Operands are
split once by :func:`split` (values and int32 exponents); B stays ``[K, N]``, so a strip of
columns is contiguous. Per block and output (the model of ``kernels_fused``):

1. ``E = max(E_c, max_t(e_a + e_b), min_exp)`` (zero operands carry ``ZERO_EXP``: never the max);
2. ``S = trunc(c 2^(W - E)) + sum_t trunc(a_t b_t 2^(W - E))``: float64 integers below 2^53,
   exact in any order (the float64 truncation trick of ``block_pair``);
3. ``S 2^(E - W)`` rounded once (RZ or RNE, subnormals, overflow to +-inf) by scaling to the
   result's quantum and ``llvm.trunc`` / ``llvm.rint``, written with selects.

An accumulator that overflowed stays infinite and stops counting events, as in ``dot``. Outputs
whose row or column holds a NaN or infinity, or whose ``c`` is not finite, are recomputed by the
IEEE rule of ``kernels_fused.special``. Work items are tiles of outputs with integer event
counts, so results and counts do not depend on the thread count or the tile shape.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types

from ._jit import bits_f64, f64_bits, jit, jit_parallel
from .kernels_fused import FRAME_EMIN, INTERLEAVED, ZERO_EXP, _unary, add_rne, ftrunc

#: llvm.rint: nearest even in the default floating-point environment, and it vectorises
frint = _unary(types.float64, lambda b, x: b.call(
    b.module.declare_intrinsic("llvm.rint", [ir.DoubleType()]), [x]))

STRIP = 256  #: columns per work item (any tile shape gives the same results)
ROWS = 8  #: rows per work item: they share each block of the B strip while it is in cache
_U52 = np.uint64(52)
_EXP_MASK = np.uint64(0x7FF)


@jit
def block_vec(va, ea, vb, eb, i, k0, k1, j0, n, acc, top, prm, count, sc, s, nl, ov, fl, lo):
    """One block FMA ``acc[jj] <- round(sum_k a[i, k] b[k, j0 + jj] + acc[jj])`` for jj < n.

    ``top`` holds ``E_c`` of ``acc`` on entry and on exit (:func:`exponent_c`); ``sc``, ``s``,
    ``nl`` are scratch. If ``count``, the block's overflows, flushes and lost products are added
    to ``ov``, ``fl``, ``lo`` (nothing where ``acc`` was already infinite: it stays as it is)."""
    width = prm.width
    exponents(ea, eb, i, k0, k1, j0, n, top)
    for jj in range(n):
        t = min(max(np.int64(top[jj]), np.int64(prm.min_exp)), 1000)  # (1024: acc infinite)
        top[jj] = t
        f = bits_f64(np.uint64(width - t + 1023) << _U52)
        sc[jj] = f
        s[jj] = ftrunc(acc[jj] * f)
        nl[jj] = 0
    k = k0
    while k + 4 <= k1:
        products4(va[i, k], va[i, k + 1], va[i, k + 2], va[i, k + 3], vb[k, j0:j0 + n],
                  vb[k + 1, j0:j0 + n], vb[k + 2, j0:j0 + n], vb[k + 3, j0:j0 + n], n, sc, s,
                  nl, count)
        k += 4
    for k in range(k, k1):
        x = va[i, k]
        vr = vb[k, j0:j0 + n]  # a 1-D slice: indices known >= 0, so the loop vectorises
        for jj in range(n):
            p = x * vr[jj]
            y = ftrunc(p * sc[jj])
            s[jj] += y
            nl[jj] += (p != 0.0) & (y == 0.0)
    if count:
        round_vec(n, acc, top, s, nl, prm, ov, fl, lo)
    else:
        round_fast(n, acc, top, s, prm)


@jit
def exponent_c(n, acc, top):
    """``top[jj] = E_c`` of ``acc[jj]``: its exponent in the binary32 frame, ``ZERO_EXP`` for 0."""
    for jj in range(n):
        c = acc[jj]
        ec = np.int32((f64_bits(c) >> _U52) & _EXP_MASK) - np.int32(1023)
        top[jj] = np.int32(ZERO_EXP) if c == 0.0 else max(ec, np.int32(FRAME_EMIN))


@jit
def exponents(ea, eb, i, k0, k1, j0, n, top):
    """``top[jj] = max(top[jj], ea[i, k] + eb[k, j0 + jj])`` over k0 <= k < k1, in int32 lanes
    (zero operands carry ``ZERO_EXP``: their sums stay below any ``min_exp``)."""
    i32 = np.int32
    k = k0
    while k + 4 <= k1:
        x0, x1, x2, x3 = ea[i, k], ea[i, k + 1], ea[i, k + 2], ea[i, k + 3]
        r0, r1 = eb[k, j0:j0 + n], eb[k + 1, j0:j0 + n]
        r2, r3 = eb[k + 2, j0:j0 + n], eb[k + 3, j0:j0 + n]
        for jj in range(n):
            m01 = max(i32(x0 + r0[jj]), i32(x1 + r1[jj]))
            m23 = max(i32(x2 + r2[jj]), i32(x3 + r3[jj]))
            top[jj] = max(top[jj], max(m01, m23))
        k += 4
    for k in range(k, k1):
        x = ea[i, k]
        r = eb[k, j0:j0 + n]
        for jj in range(n):
            top[jj] = max(top[jj], i32(x + r[jj]))


@jit
def products4(x0, x1, x2, x3, r0, r1, r2, r3, n, sc, s, nl, count):
    """``s[jj] += sum_t trunc(x_t r_t[jj] sc[jj])`` for four rows of B (exact: integers below
    2^53 in any order); ``nl[jj]`` counts the nonzero products truncated to zero if ``count``."""
    if count:
        for jj in range(n):
            f = sc[jj]
            p0, p1, p2, p3 = x0 * r0[jj], x1 * r1[jj], x2 * r2[jj], x3 * r3[jj]
            y0, y1, y2, y3 = ftrunc(p0 * f), ftrunc(p1 * f), ftrunc(p2 * f), ftrunc(p3 * f)
            s[jj] += (y0 + y1) + (y2 + y3)
            nl[jj] += (np.int64((p0 != 0.0) & (y0 == 0.0)) + np.int64((p1 != 0.0) & (y1 == 0.0))
                       + np.int64((p2 != 0.0) & (y2 == 0.0)) + np.int64((p3 != 0.0) & (y3 == 0.0)))
    else:
        for jj in range(n):
            f = sc[jj]
            y0, y1 = ftrunc(x0 * r0[jj] * f), ftrunc(x1 * r1[jj] * f)
            y2, y3 = ftrunc(x2 * r2[jj] * f), ftrunc(x3 * r3[jj] * f)
            s[jj] += (y0 + y1) + (y2 + y3)


@jit
def round_vec(n, acc, top, s, nl, prm, ov, fl, lo):
    """``acc[jj] <- round(s[jj] 2^(top[jj] - W))`` where ``acc[jj]`` is finite (as
    ``kernels_fused.round_value``), then ``top[jj] <- E_c(acc[jj])``; events as ``block_vec``."""
    width, p, emin, rne = prm.width, prm.p, prm.emin, prm.rne
    tiny_ok = prm.subnormals != 0
    big = bits_f64(np.uint64(prm.emax + 1 + 1023) << _U52)
    for jj in range(n):
        c = acc[jj]
        fin = (c - c) == 0.0
        v = s[jj] * bits_f64(np.uint64(top[jj] - width + 1023) << _U52)
        e = np.int64((f64_bits(v) >> _U52) & _EXP_MASK) - 1023
        q = max(e, emin) - p
        y = v * bits_f64(np.uint64(1023 - q) << _U52)
        m = frint(y) if rne else ftrunc(y)
        r = m * bits_f64(np.uint64(q + 1023) << _U52)
        nonzero = v != 0.0
        neg = v < 0.0
        tiny = (e < emin) & (not tiny_ok)
        gone = (m == 0.0) | tiny
        over = (abs(r) >= big) & (not gone)
        r = (-0.0 if neg else 0.0) if tiny else r
        r = (-np.inf if neg else np.inf) if over else r
        r = (r if nonzero else 0.0) if fin else c
        acc[jj] = r
        er = np.int64((f64_bits(r) >> _U52) & _EXP_MASK) - 1023
        top[jj] = np.int32(ZERO_EXP if r == 0.0 else max(er, FRAME_EMIN))
        ov[jj] += np.int64(over & fin)  # (unconditional: a branch here stops vectorisation)
        fl[jj] += np.int64(gone & nonzero & fin)
        lo[jj] += nl[jj] if fin else 0


@jit
def round_binary32(n, acc, top, s, width, rne):
    """:func:`round_fast` to binary32 with subnormals (most presets' output): ``v`` is exact
    in float64, so nearest-even is the host's own conversion to float32 (overflowing to
    infinity at the IEEE threshold), and toward zero clears the 29 low bits of a normal value
    or truncates ``v 2^149`` below binary32's smallest normal (infinity from ``2^128`` on)."""
    for jj in range(n):
        v = s[jj] * bits_f64(np.uint64(top[jj] - width + 1023) << _U52)
        if rne:
            r = np.float64(np.float32(v))
        else:
            cut = bits_f64(f64_bits(v) & np.uint64(0xFFFFFFFFE0000000))
            r = ftrunc(v * 2.0**149) * 2.0**-149 if abs(v) < 2.0**-126 else cut
            r = r * np.inf if abs(r) >= 2.0**128 else r
        r = 0.0 if v == 0.0 else r  # (an exact zero sum is +0, as in ``round_fast``)
        acc[jj] = r
        er = np.int64((f64_bits(r) >> _U52) & _EXP_MASK) - 1023
        top[jj] = np.int32(ZERO_EXP if r == 0.0 else max(er, FRAME_EMIN))


@jit
def round_fast(n, acc, top, s, prm):
    """:func:`round_vec` without events, in fewer operations: an infinite ``acc`` needs no mask
    (its sum is infinite and rounds to the same infinity)."""
    if prm.p == 23 and prm.emin == -126 and prm.emax == 127 and prm.subnormals != 0:
        round_binary32(n, acc, top, s, prm.width, prm.rne)
        return
    width, p, emin, rne = prm.width, prm.p, prm.emin, prm.rne
    tiny_ok = prm.subnormals != 0
    big = bits_f64(np.uint64(prm.emax + 1 + 1023) << _U52)
    for jj in range(n):
        v = s[jj] * bits_f64(np.uint64(top[jj] - width + 1023) << _U52)
        e = np.int64((f64_bits(v) >> _U52) & _EXP_MASK) - 1023
        q = max(e, emin) - p
        y = v * bits_f64(np.uint64(1023 - q) << _U52)
        m = frint(y) if rne else ftrunc(y)
        r = m * bits_f64(np.uint64(q + 1023) << _U52)
        r = r * np.inf if abs(r) >= big else r
        r = r * 0.0 if (e < emin) & (not tiny_ok) else r
        r = 0.0 if v == 0.0 else r
        acc[jj] = r
        er = np.int64((f64_bits(r) >> _U52) & _EXP_MASK) - 1023
        top[jj] = np.int32(ZERO_EXP if r == 0.0 else max(er, FRAME_EMIN))


@jit
def tile(va, ea, vb, eb, c, i0, rows, j0, n, prm, count, out):
    """Outputs ``(i0 .. i0 + rows, j0 .. j0 + n)`` of the hardware path; returns the events
    ``[3, rows, n]`` (overflows, flushes, lost; zeros unless ``count``). Blocks are the outer
    loop and rows the inner one, so each block of the B strip is read once per tile."""
    kk = va.shape[1]
    acc = np.empty((rows, n))
    top = np.empty((rows, n), dtype=np.int32)
    for r in range(rows):
        for jj in range(n):
            acc[r, jj] = c[i0 + r, j0 + jj]
        exponent_c(n, acc[r], top[r])
    events = np.zeros((3, rows, n), dtype=np.int64)
    scratch = (np.empty(n), np.empty(n), np.empty(n, dtype=np.int64))
    t = prm.terms
    if prm.pattern == INTERLEAVED:
        d, td = np.empty(n), np.empty(n, dtype=np.int32)
        held = np.empty((3, n), dtype=np.int64)
        for k0 in range(0, kk, 2 * t):
            for r in range(rows):
                d[:] = 0.0
                td[:] = ZERO_EXP
                held[:] = 0
                block_vec(va, ea, vb, eb, i0 + r, k0, k0 + t, j0, n, d, td, prm, count,
                          *scratch, held[0], held[1], held[2])
                block_vec(va, ea, vb, eb, i0 + r, k0 + t, k0 + 2 * t, j0, n, d, td, prm, count,
                          *scratch, held[0], held[1], held[2])
                add_block(n, d, acc[r], prm, held, events[0, r], events[1, r], events[2, r])
    else:
        for k0 in range(0, kk, t):
            for r in range(rows):
                block_vec(va, ea, vb, eb, i0 + r, k0, min(k0 + t, kk), j0, n, acc[r], top[r],
                          prm, count, *scratch, events[0, r], events[1, r], events[2, r])
    for r in range(rows):
        for jj in range(n):
            out[i0 + r, j0 + jj] = acc[r, jj]
    return events


@jit
def add_block(n, d, acc, prm, held, ov, fl, lo):
    """Interleaved pattern: ``acc <- RNE(d + acc)`` (one rounding) where ``acc`` is finite, and
    the block's events ``held`` counted; an overflowed chain stays as it is."""
    for jj in range(n):
        a = acc[jj]
        if not ((a - a) == 0.0):
            continue  # stopped: the chain has overflowed
        o = f = 0
        if (d[jj] - d[jj]) == 0.0:
            r, o, f = add_rne(d[jj], a, prm)
            acc[jj] = r
        else:
            acc[jj] = d[jj]
        ov[jj] += held[0, jj] + o
        fl[jj] += held[1, jj] + f
        lo[jj] += held[2, jj]


@jit
def special(a, b, i, j, c):
    """``kernels_fused.special`` with B as ``[K, N]``: NaN > mixed infinities > infinity."""
    nan = not (c == c)
    pos = c == np.inf
    neg = c == -np.inf
    for k in range(a.shape[1]):
        p = a[i, k] * b[k, j]
        nan |= not (p == p)
        pos |= p == np.inf
        neg |= p == -np.inf
    if nan or (pos and neg):
        return np.nan
    return np.inf if pos else (-np.inf if neg else 0.0)


@jit
def work_item(va, ea, vb, eb, a, b, c, bad_a, bad_b, prm, count, out, idx):
    """Work item ``idx``: one tile of ROWS x STRIP outputs, then its special outputs (a NaN or
    infinity in their row, column or ``c``: no events). Returns (overflows, flushes, lost)."""
    m, n_out = c.shape
    groups = (m + ROWS - 1) // ROWS  # row groups vary fastest: neighbours share their B strip
    strip = idx // groups
    i0, j0 = (idx - strip * groups) * ROWS, strip * STRIP
    rows, n = min(ROWS, m - i0), min(STRIP, n_out - j0)
    ev = tile(va, ea, vb, eb, c, i0, rows, j0, n, prm, count, out)
    over = flush = lost = 0
    for r in range(rows):
        i = i0 + r
        for jj in range(n):
            j = j0 + jj
            if bad_a[i] == -2 or bad_b[j] == -2 or not ((c[i, j] - c[i, j]) == 0.0):
                out[i, j] = special(a, b, i, j, c[i, j])
            else:
                over += ev[0, r, jj]
                flush += ev[1, r, jj]
                lost += ev[2, r, jj]
    return over, flush, lost


@jit
def items(c):
    """Number of work items (tiles) of an output ``c``."""
    m, n = c.shape
    return ((m + ROWS - 1) // ROWS) * ((n + STRIP - 1) // STRIP)


@jit_parallel
def gemm_vec(va, ea, vb, eb, a, b, c, bad_a, bad_b, prm, count, out):
    """``out`` = the hardware path over all tiles; (overflows, flushes, lost). ``va``, ``ea``,
    ``a`` are ``[M, K]``; ``vb``, ``eb``, ``b`` are ``[K, N]``; ``bad_a`` / ``bad_b`` are -2 for
    a row of A / column of B holding a NaN or infinity (from :func:`split` / ``decompose``)."""
    over = flush = lost = 0
    for idx in prange(items(c)):
        o, f, s = work_item(va, ea, vb, eb, a, b, c, bad_a, bad_b, prm, count, out, idx)
        over += o
        flush += f
        lost += s
    return over, flush, lost


@jit
def gemm_vec_serial(va, ea, vb, eb, a, b, c, bad_a, bad_b, prm, count, out):
    """:func:`gemm_vec` on the calling thread (small problems: no thread start-up)."""
    over = flush = lost = 0
    for idx in range(items(c)):
        o, f, s = work_item(va, ea, vb, eb, a, b, c, bad_a, bad_b, prm, count, out, idx)
        over += o
        flush += f
        lost += s
    return over, flush, lost


@jit
def split_row(x, r, emin, emax, mant, maxval, subnormals, val, exp, transposed):
    """Row ``r`` of :func:`split`: ``val``, ``exp`` as ``kernels_fused.decompose`` makes them
    (without significands), at ``[r, k]``, or at ``[k, r]`` if ``transposed``; returns how many
    elements are NaN, infinite or not values of the format (the caller then runs ``decompose``
    to find and report them)."""
    problems = 0
    for k in range(x.shape[1]):
        v = x[r, k]
        a = abs(v)
        ok = a <= maxval
        e = max(np.int64((f64_bits(a) >> _U52) & _EXP_MASK) - 1023, np.int64(emin))
        sc = a * bits_f64(np.uint64(mant - e + 1023) << _U52)
        exact = ftrunc(sc) == sc
        problems += np.int64((not ok) | ((a != 0.0) & ((not exact) | (e > emax))))
        flush = (e == emin) & (sc < (1 << mant)) & (subnormals == 0)
        zero = (not ok) | (a == 0.0) | flush
        y = 0.0 if zero else v
        ey = np.int32(ZERO_EXP) if zero else np.int32(e)
        if transposed:
            val[k, r] = y
            exp[k, r] = ey
        else:
            val[r, k] = y
            exp[r, k] = ey
    return problems


@jit_parallel
def split(x, emin, emax, mant, maxval, subnormals, val, exp, transposed):
    """:func:`split_row` over every row (rows in parallel): the number of elements to
    report. ``transposed``: ``val`` and ``exp`` are ``x``'s shape transposed (the operands of
    ``c^T = b^T a^T``)."""
    problems = 0
    for r in prange(x.shape[0]):
        problems += split_row(x, r, emin, emax, mant, maxval, subnormals, val, exp, transposed)
    return problems

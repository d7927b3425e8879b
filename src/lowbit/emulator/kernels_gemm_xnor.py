"""Binary (XNOR-popcount) GEMM: sign packing with the +-1 check fused in, and a popcount loop
vectorised across output columns.

Packing: bit ``k % 64`` of word ``k // 64`` is 1 for ``-1`` (``x < 0``); padding bits are 0 in
both operands, so they never differ. A's rows pack to ``pa[i, t]``; B packs k-major as
``pb[t, j]`` (read row by row, no transpose), so the inner loop of the product runs over j:
``dot[i, j] = K - 2 * sum_t popcount(pa[i, t] ^ pb[t, j])``, an exact integer. Each kernel has a
serial and a parallel variant: on small problems a parallel launch costs more than the work.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_inline, jit_parallel
from .kernels_accumulate_exact import popcount64

__all__ = ["pack_rows", "pack_cols", "xnor_gemm"]

U0 = np.uint64(0)
U1 = np.uint64(1)


@jit_inline
def _bad(v, signs):
    """With ``signs`` the values are raw data binarised here (sign(0) = +1): only NaN is bad;
    otherwise they must already be +-1."""
    return (v != v) if signs == 1 else ((v != 1.0) & (v != -1.0))


@jit_inline
def _pack_row(x, i, words, signs):
    """Row i of +-1 values (or raw values, with ``signs``) into words[i]; returns the bad count."""
    kk = x.shape[1]
    bad = 0
    for t in range(words.shape[1]):
        acc = U0
        for u in range(min(64, kk - 64 * t)):
            v = x[i, 64 * t + u]
            bad += _bad(v, signs)
            acc |= np.uint64(v < 0.0) << np.uint64(u)
        words[i, t] = acc
    return bad


@jit_inline
def _pack_word_row(x, t, words, signs):
    """Rows 64t..64t+63 of x (+-1 or raw values, [K, N]) into words[t, :]; returns the bad count."""
    kk, n = x.shape
    bad = 0
    wt = words[t]
    wt[:] = U0
    for u in range(min(64, kk - 64 * t)):
        xr = x[64 * t + u]
        su = np.uint64(u)
        for j in range(n):
            v = xr[j]
            bad += _bad(v, signs)
            wt[j] |= np.uint64(v < 0.0) << su
    return bad


@jit
def _pack_rows_s(x, words, signs):
    bad = 0
    for i in range(x.shape[0]):
        bad += _pack_row(x, i, words, signs)
    return bad


@jit_parallel
def _pack_rows_p(x, words, signs):
    bad = 0
    for i in prange(x.shape[0]):
        bad += _pack_row(x, i, words, signs)
    return bad


@jit
def _pack_cols_s(x, words, signs):
    bad = 0
    for t in range(words.shape[0]):
        bad += _pack_word_row(x, t, words, signs)
    return bad


@jit_parallel
def _pack_cols_p(x, words, signs):
    bad = 0
    for t in prange(words.shape[0]):
        bad += _pack_word_row(x, t, words, signs)
    return bad


@jit_inline
def _xnor_row(pa, pb, i, kk, c, out, has_c, s):
    n = pb.shape[1]
    s[:] = 0
    for t in range(pa.shape[1]):
        wa = pa[i, t]
        pbt = pb[t]
        for j in range(n):
            s[j] += np.int64(popcount64(wa ^ pbt[j]))
    for j in range(n):
        out[i, j] = np.float64(kk - 2 * s[j]) + (c[i, j] if has_c == 1 else 0.0)


@jit
def _xnor_s(pa, pb, kk, c, out, has_c):
    s = np.zeros(pb.shape[1], np.int64)
    for i in range(pa.shape[0]):
        _xnor_row(pa, pb, i, kk, c, out, has_c, s)


@jit_parallel
def _xnor_p(pa, pb, kk, c, out, has_c):
    for i in prange(pa.shape[0]):
        s = np.zeros(pb.shape[1], np.int64)
        _xnor_row(pa, pb, i, kk, c, out, has_c, s)


PARALLEL_MIN = 1 << 27  #: MACs (or 64x packed values) from which the parallel variants run


def pack_rows(x: np.ndarray, signs: bool = False) -> tuple[np.ndarray, int]:
    """``[M, K]`` +-1 rows (or raw rows binarised, with ``signs``) packed to
    ``[M, ceil(K/64)]`` words; and the count of bad entries (not +-1; NaN with ``signs``)."""
    words = np.empty((x.shape[0], max(1, -(-x.shape[1] // 64))), np.uint64)
    big = x.size * 64 >= PARALLEL_MIN
    return words, int((_pack_rows_p if big else _pack_rows_s)(x, words, int(signs)))


def pack_cols(x: np.ndarray, signs: bool = False) -> tuple[np.ndarray, int]:
    """``[K, N]`` columns packed k-major to ``[ceil(K/64), N]``; and the bad count."""
    words = np.empty((max(1, -(-x.shape[0] // 64)), x.shape[1]), np.uint64)
    big = x.size * 64 >= PARALLEL_MIN
    return words, int((_pack_cols_p if big else _pack_cols_s)(x, words, int(signs)))


def xnor_gemm(pa, pb, kk: int, c, out, has_c: int) -> None:
    """``out = c + A @ B`` from packed operands (exact integers held in float64)."""
    big = pa.shape[0] * pb.shape[1] * kk >= PARALLEL_MIN
    (_xnor_p if big else _xnor_s)(pa, pb, kk, c, out, has_c)

"""Numba kernel for formats given by a sorted table of magnitudes (radix-4 FP4 and any format of
at most 16 bits whose grid is not a plain radix-2 one).

The table holds every finite magnitude once, ascending, with its code, followed by one sentinel:
the next point of the unbounded grid above ``max`` (code -1), so that rounding near the top
decides overflow exactly as the radix-2 kernel does. ``p`` is the tuple
``(signed, mantissa_bits, overflow, sign_mask, negative_zero, nan_code, inf_code)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit_force_inline, jit_parallel
from .kernels_float import (DOWN, NAN, NEAREST_AWAY, NEAREST_EVEN, SATURATE, SATURATE_KEEP_INF,
                            STOCHASTIC, TO_ODD, TOWARD_ZERO, U0, UP)
from .rng import counter_bits


@jit_force_inline
def away_from_lo(a, lo, hi, lo_odd, neg, mode, rnd, nbits):
    """Whether magnitude ``a`` in [lo, hi) rounds to ``hi`` (P3109 RoundAway). Bitwise ``&``/``|``
    rather than ``and``/``or``: short-circuits are branches, which random data mispredict."""
    inexact = (a != lo) & (a != np.inf)
    if mode == NEAREST_EVEN or mode == NEAREST_AWAY:
        mid = 0.5 * (lo + hi)
        return inexact & ((a > mid) | ((a == mid) & ((mode == NEAREST_AWAY) | lo_odd)))
    if mode == UP:
        return inexact & (not neg)
    if mode == DOWN:
        return inexact & neg
    if mode == TO_ODD:
        return inexact & (not lo_odd)
    if mode == STOCHASTIC:  # gap fraction in float64: exact for float32 inputs (docs/rounding.md)
        t = np.uint64(np.floor((a - lo) / (hi - lo) * 2.0 ** nbits))
        return inexact & (t + (rnd >> np.uint64(64 - nbits)) >= (np.uint64(1) << np.uint64(nbits)))
    return False


@jit_force_inline
def table_round(x, mags, codes, p, mode, rnd, nbits):
    """Returns (value, code) of x rounded onto the table; code < 0 when the format has no code
    for the result (-2 NaN, -3 infinity)."""
    if x != x:
        return x, np.int64(p[5] if p[5] >= 0 else -2)
    neg = np.signbit(x)
    a = abs(x)
    top = mags.size - 2  # index of max; mags[top + 1] is the sentinel beyond it
    # j: the largest index with mags[j] <= a (-1 if none); counted without branches, since
    # random data mispredict a search (small tables: a linear count; large: a fixed-trip search)
    if top < 64:
        count = 0
        for k in range(top + 2):
            count += mags[k] <= a
        base = count - 1
    else:
        base, n = 0, top + 2
        while n > 1:
            half = n >> 1
            base += half * (mags[base + half] <= a)
            n -= half
        base = base if mags[base] <= a else -1
    j = min(base, top)  # above max: decide between max and the sentinel beyond it
    if j < 0:  # below the smallest magnitude of a format without zero
        j = 0
        away = False
        lo = mags[0]
    else:
        lo = mags[j]
        hi = mags[j + 1]
        # parity of lo's integer significand: zero even, a mantissa-less normal value odd
        lo_odd = (lo != 0.0) & ((p[1] == 0) | ((codes[j] & 1) == 1))
        away = away_from_lo(a, lo, hi, lo_odd, neg, mode, rnd, nbits)
        away = away | (a == np.inf) | (a >= hi)  # at or past the sentinel: overflow, as radix 2
    if away and j == top:  # overflow
        tz = mode == TOWARD_ZERO or (mode == DOWN and not neg) or (mode == UP and neg)
        finite_in = a != np.inf
        if p[2] == SATURATE or (finite_in and (p[2] == SATURATE_KEEP_INF or tz)):
            away = False
        elif p[2] == NAN:
            return signed_result(np.nan, np.int64(p[5] if p[5] >= 0 else -2), neg, p,
                                 mags[0], codes[0])
        else:
            inf_code = np.int64(-3) if p[6] < 0 else np.int64(p[6])
            return signed_result(np.inf, inf_code, neg, p, mags[0], codes[0])
    if away:
        j += 1
    return signed_result(mags[j], np.int64(codes[j]), neg, p, mags[0], codes[0])


@jit_force_inline
def signed_result(mag, code, neg, p, smallest, smallest_code):
    """Attach the sign to a rounded magnitude: -0 only where the format has it; in an unsigned
    format a negative non-zero result is NaN, or the smallest value under SATURATE (or when
    there is no NaN code)."""
    if not neg or mag != mag:
        return (np.copysign(mag, -1.0) if neg else mag), code
    if p[0] == 0:
        if mag == 0.0:
            return 0.0, code
        if p[2] == SATURATE or p[5] < 0:
            return smallest, np.int64(smallest_code)
        return np.nan, np.int64(p[5])
    if mag == 0.0 and p[4] == 0:
        return 0.0, code
    return -mag, code | np.int64(p[3])


@jit_parallel
def quantize_table(x, out, mags, codes, p, mode, key, offset, nbits):
    """Values of ``x`` rounded onto the table."""
    for i in prange(x.size):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        out[i] = table_round(np.float64(x[i]), mags, codes, p, mode, rnd, nbits)[0]


@jit_parallel
def encode_table(x, codes_out, mags, codes, p, mode, key, offset, nbits):
    """Codes of ``x`` rounded onto the table; returns the count of results with no code."""
    bad = 0
    for i in prange(x.size):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        code = table_round(np.float64(x[i]), mags, codes, p, mode, rnd, nbits)[1]
        if code < 0:
            bad += 1
            code = 0
        codes_out[i] = code
    return bad

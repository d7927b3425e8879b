"""Numba kernels for formats given by a sorted table of magnitudes (radix-4 FP4 and any format of
at most 16 bits whose grid is not a plain radix-2 one).

The table holds every finite magnitude once, ascending, with its code, followed by one sentinel:
the next point of the unbounded grid above ``max`` (code -1), so that rounding near the top
decides overflow exactly as the radix-2 kernel does.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import CHUNK, jit_inline, jit_parallel
from .kernels_float import (DOWN, NAN, NEAREST_AWAY, NEAREST_EVEN, SATURATE, SATURATE_KEEP_INF,
                            STOCHASTIC, TO_ODD, TOWARD_ZERO, U0, UP)
from .rng import counter_bits


@jit_inline
def _lo_is_odd(lo_code, lo, mantissa_bits):
    """Parity of the lower neighbour's integer significand: zero is even, a mantissa-less
    normal value is the implicit 1 (odd), otherwise the code's last bit."""
    if lo == 0.0:
        return False
    if mantissa_bits == 0:
        return True
    return (lo_code & 1) == 1


@jit_inline
def _away(a, lo, hi, lo_odd, mode, neg, rnd, nbits):
    if a == lo:
        return False
    if mode == NEAREST_EVEN or mode == NEAREST_AWAY:
        mid = 0.5 * (lo + hi)
        if a != mid:
            return a > mid
        return mode == NEAREST_AWAY or lo_odd
    if mode == TOWARD_ZERO:
        return False
    if mode == UP:
        return not neg
    if mode == DOWN:
        return neg
    if mode == TO_ODD:
        return not lo_odd
    nu = (a - lo) / (hi - lo)
    top = np.uint64(np.floor(nu * 2.0 ** nbits))
    return top + (rnd >> np.uint64(64 - nbits)) >= (np.uint64(1) << np.uint64(nbits))


@jit_inline
def table_round(x, mags, codes, p, mode, rnd, nbits):
    """Returns (value, code) of x rounded onto the table; code -2 for NaN input."""
    if x != x:
        return x, np.int64(p[5] if p[5] >= 0 else -2)
    neg = x < 0.0 or (x == 0.0 and np.signbit(x))
    a = abs(x)
    top = mags.size - 2  # index of max; mags[-1] is the sentinel beyond it
    maxval = mags[top]
    if a == np.inf or a > maxval:
        if a == np.inf:
            over = True
        else:
            over = _away(a, maxval, mags[top + 1], _lo_is_odd(codes[top], maxval, p[1]),
                         mode, neg, rnd, nbits)
        if not over:
            return _signed(maxval, codes[top], neg, p)
        tz = mode == TOWARD_ZERO or (mode == DOWN and not neg) or (mode == UP and neg)
        if p[2] == NAN and not (tz and a != np.inf):
            return np.nan, np.int64(p[5] if p[5] >= 0 else -2)
        if p[2] == SATURATE or p[2] == SATURATE_KEEP_INF or tz:
            return _signed(maxval, codes[top], neg, p)
        inf_code = np.int64(-3) if p[6] < 0 else np.int64(p[6] | (p[3] if neg else 0))
        return (-np.inf if neg else np.inf), inf_code
    j = np.searchsorted(mags[:top + 1], a, side="right") - 1  # mags[j] <= a < mags[j + 1]
    if j < 0:  # below the smallest magnitude of a format without zero
        return _signed(mags[0], codes[0], neg, p)
    lo = mags[j]
    if a == lo:
        return _signed(lo, codes[j], neg, p)
    if _away(a, lo, mags[j + 1], _lo_is_odd(codes[j], lo, p[1]), mode, neg, rnd, nbits):
        j += 1
    return _signed(mags[j], codes[j], neg, p)


@jit_inline
def _signed(mag, code, neg, p):
    """p = (signed, mantissa_bits, overflow, sign_mask, negative_zero, nan_code, inf_code)."""
    if not neg:
        return mag, np.int64(code)
    if p[0] == 0:
        if mag == 0.0:
            return 0.0, np.int64(code)
        return np.nan, np.int64(-2)
    if mag == 0.0 and p[4] == 0:
        return 0.0, np.int64(code)
    return -mag, np.int64(code | p[3])


@jit_parallel
def quantize_table(x, out, codes_out, mags, codes, p, mode, key, offset, nbits, want_codes):
    """Round ``x`` onto the table; write values to ``out`` or codes to ``codes_out``.
    Returns the number of results with no code (NaN or inf in a format without them)."""
    n = x.size
    nchunks = (n + CHUNK - 1) // CHUNK
    bad = 0
    for c in prange(nchunks):
        start = c * CHUNK
        for i in range(start, min(n, start + CHUNK)):
            rnd = U0
            if mode == STOCHASTIC:
                rnd = counter_bits(key, np.uint64(offset + i))
            v, code = table_round(np.float64(x[i]), mags, codes, p, mode, rnd, nbits)
            if want_codes:
                if code < 0:
                    bad += 1
                    code = 0
                codes_out[i] = code
            else:
                out[i] = v
    return bad

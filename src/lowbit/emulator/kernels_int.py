"""Numba kernels for integer / fixed-point formats and the binary (+-1) format."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import CHUNK, jit_inline, jit_parallel
from .kernels_float import DOWN, NEAREST_AWAY, NEAREST_EVEN, STOCHASTIC, TO_ODD, U0, UP
from .rng import counter_bits


@jit_inline
def int_round(x, p, mode, rnd, nbits):
    """The integer code value q (as float64) of x under format params p; NaN stays NaN."""
    if x != x:
        return x
    y = x * 2.0 ** p.fraction_bits
    if y == np.inf or y == -np.inf:
        if p.wrap == 1:
            return np.nan
        return np.float64(p.qmax) if y > 0 else np.float64(p.qmin)
    neg = y < 0.0
    a = abs(y)
    fl = np.floor(a)
    rem = a - fl  # exact
    odd = np.fmod(fl, 2.0) != 0.0
    away = False
    if rem != 0.0:
        if mode == NEAREST_EVEN:
            away = rem > 0.5 or (rem == 0.5 and odd)
        elif mode == NEAREST_AWAY:
            away = rem >= 0.5
        elif mode == UP:
            away = not neg
        elif mode == DOWN:
            away = neg
        elif mode == TO_ODD:
            away = not odd
        elif mode == STOCHASTIC:  # P3109 StochasticA on the magnitude
            top = np.uint64(np.floor(rem * 2.0 ** nbits))
            away = top + (rnd >> np.uint64(64 - nbits)) >= (np.uint64(1) << np.uint64(nbits))
    mag = fl + 1.0 if away else fl
    q = -mag if (neg and mag != 0.0) else mag
    if q > p.qmax or q < p.qmin:
        if p.wrap == 0:
            return np.float64(p.qmax) if q > p.qmax else np.float64(p.qmin)
        span = 2.0 ** p.bits
        q = np.fmod(q - p.qmin, span)
        if q < 0.0:
            q += span
        q += p.qmin
    return q


@jit_parallel
def quantize_int(x, out, codes_out, p, mode, key, offset, nbits, want_codes):
    n = x.size
    nchunks = (n + CHUNK - 1) // CHUNK
    scale = 2.0 ** -p.fraction_bits
    mask = (1 << p.bits) - 1
    bad = 0
    for c in prange(nchunks):
        start = c * CHUNK
        for i in range(start, min(n, start + CHUNK)):
            rnd = U0
            if mode == STOCHASTIC:
                rnd = counter_bits(key, np.uint64(offset + i))
            q = int_round(np.float64(x[i]), p, mode, rnd, nbits)
            if want_codes:
                if q != q:
                    bad += 1
                    codes_out[i] = 0
                else:
                    codes_out[i] = np.int64(q) & mask
            else:
                out[i] = q * scale
    return bad


@jit_parallel
def quantize_binary(x, out, codes_out, stochastic, key, offset, want_codes):
    """sign(x) with sign(0) = +1, or +1 with probability clip((x + 1) / 2, 0, 1)."""
    n = x.size
    nchunks = (n + CHUNK - 1) // CHUNK
    bad = 0
    for c in prange(nchunks):
        start = c * CHUNK
        for i in range(start, min(n, start + CHUNK)):
            xi = np.float64(x[i])
            if xi != xi:
                v = xi
            elif stochastic:
                prob = min(max(0.5 * (xi + 1.0), 0.0), 1.0)
                u = np.float64(counter_bits(key, np.uint64(offset + i)) >> np.uint64(11)) * 2.0 ** -53
                v = 1.0 if u < prob else -1.0
            else:
                v = 1.0 if xi >= 0.0 else -1.0
            if want_codes:
                if v != v:
                    bad += 1
                    codes_out[i] = 0
                else:
                    codes_out[i] = 1 if v > 0.0 else 0
            else:
                out[i] = v
    return bad

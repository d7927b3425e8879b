"""Numba kernels for integer / fixed-point formats and the binary (+-1) format.

Values and codes are separate loops: a reduction (the count of uncodable inputs) in the same
loop slows the values loop several times.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit_force_inline, jit_parallel
from .kernels_float import DOWN, NEAREST_AWAY, NEAREST_EVEN, STOCHASTIC, TO_ODD, U0, UP
from .rng import counter_bits


@jit_force_inline
def int_round(x, p, mode, rnd, nbits):
    """The integer q (as float64) that x * 2^fraction_bits rounds to; NaN stays NaN, and so does
    an infinite input under wrapping (it has no residue)."""
    y = x * 2.0 ** p.fraction_bits  # (exact, or a float64 subnormal below one step)
    tiny = (y == 0.0) & (x != 0.0)  # a subnormal x scaled down to zero: still inexact
    neg = (y < 0.0) | (tiny & (x < 0.0))
    a = abs(y)
    fl = np.floor(a)
    rem = a - fl  # exact
    odd = (fl - 2.0 * np.floor(0.5 * fl)) != 0.0
    inexact = (rem != 0.0) | tiny
    if mode == NEAREST_EVEN:
        away = (rem > 0.5) | ((rem == 0.5) & odd)
    elif mode == NEAREST_AWAY:
        away = rem >= 0.5
    elif mode == UP:
        away = inexact & (not neg)
    elif mode == DOWN:
        away = inexact & neg
    elif mode == TO_ODD:
        away = inexact & (not odd)
    elif mode == STOCHASTIC:  # P3109 StochasticA on the magnitude
        top = np.uint64(np.floor(rem * 2.0 ** nbits))
        away = inexact & (top + (rnd >> np.uint64(64 - nbits)) >= (np.uint64(1) << np.uint64(nbits)))
    else:
        away = False
    mag = fl + np.float64(away)
    q = np.copysign(mag, y) + 0.0  # + 0.0 turns -0 into +0: integers have one zero
    if p.wrap == 0:
        q = min(max(q, np.float64(p.qmin)), np.float64(p.qmax))
    elif (q > p.qmax) | (q < p.qmin):
        span = 2.0 ** p.bits  # fmod of an integral float is exact; q - qmin might not be
        q = np.fmod(q, span)
        q = q + span if q < p.qmin else (q - span if q > p.qmax else q)
        q += 0.0  # fmod keeps the sign of a zero
    return q  # NaN in, NaN out (every comparison above is false for NaN)


@jit_parallel
def quantize_int(x, out, p, mode, key, offset, nbits):
    scale = 2.0 ** -p.fraction_bits
    for i in prange(x.size):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        out[i] = int_round(np.float64(x[i]), p, mode, rnd, nbits) * scale


@jit_parallel
def encode_int(x, codes_out, p, mode, key, offset, nbits):
    """Two's-complement codes; returns how many inputs (NaN) had no code."""
    mask = (1 << p.bits) - 1
    bad = 0
    for i in prange(x.size):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        q = int_round(np.float64(x[i]), p, mode, rnd, nbits)
        if q != q:
            bad += 1
            codes_out[i] = 0
        else:
            codes_out[i] = np.int64(q) & mask
    return bad


@jit_force_inline
def binary_value(x, stochastic, key, index):
    """sign(x) with sign(0) = +1, or +1 with probability clip((x + 1) / 2, 0, 1)."""
    if stochastic:
        prob = min(max(0.5 * (x + 1.0), 0.0), 1.0)
        u = np.float64(counter_bits(key, index) >> np.uint64(11)) * 2.0 ** -53
        v = 1.0 if u < prob else -1.0
    else:
        v = 1.0 if x >= 0.0 else -1.0
    return x if x != x else v


@jit_parallel
def quantize_binary(x, out, stochastic, key, offset):
    for i in prange(x.size):
        out[i] = binary_value(np.float64(x[i]), stochastic, key, np.uint64(offset + i))


@jit_parallel
def encode_binary(x, codes_out, stochastic, key, offset):
    bad = 0
    for i in prange(x.size):
        v = binary_value(np.float64(x[i]), stochastic, key, np.uint64(offset + i))
        if v != v:
            bad += 1
        codes_out[i] = 1 if v > 0.0 else 0
    return bad


@jit_parallel
def integer_peak(x):
    """max |x| over a float64 array (0 when empty), or -1.0 if any element is not an integer
    (a fraction, NaN or infinity): the check and the bound of integer accumulation in one
    pass."""
    flat = x.reshape(-1)
    n = flat.size
    chunk = 1 << 14
    nchunks = (n + chunk - 1) // chunk
    peaks = np.zeros(max(nchunks, 1))
    for c in prange(nchunks):
        top = 0.0
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            v = flat[i]
            if v != np.trunc(v) or v != v:  # a fraction or NaN (an infinity gives top = inf)
                top = np.inf
            elif abs(v) > top:
                top = abs(v)
        peaks[c] = top
    top = peaks.max()
    return -1.0 if top == np.inf else top

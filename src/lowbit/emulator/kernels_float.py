"""Numba kernels for radix-2 float formats: quantise, encode, decode.

Every input value is widened to float64 (exact for float16/32/64) and its significand rounded as
an integer, so results are bit-exact and independent of the host's float rounding. A kernel sees
numbers, arrays and the ``FloatKernelParams`` tuple only.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import CHUNK, bits_f64, f64_bits, jit_inline, jit_parallel
from .rng import counter_bits

U0 = np.uint64(0)
U1 = np.uint64(1)
FRAC = np.uint64((1 << 52) - 1)
IMPLICIT = np.uint64(1 << 52)
EXP_MASK = np.uint64(0x7FF)

NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, UP, DOWN, TO_ODD, STOCHASTIC = range(7)
SATURATE, SATURATE_KEEP_INF, INFINITY, NAN = range(4)
SPECIALS_IEEE, SPECIALS_FN, SPECIALS_FNUZ, SPECIALS_NONE = range(4)


@jit_inline
def pow2(e):
    """2.0**e as float64 for -1074 <= e <= 1023, built from bits."""
    if e >= -1022:
        return bits_f64(np.uint64(e + 1023) << np.uint64(52))
    return bits_f64(U1 << np.uint64(e + 1074))


@jit_inline
def round_away(kept, rem, d, mode, neg, rnd, nbits):
    """Whether the truncated significand ``kept`` (remainder ``rem`` of ``d`` dropped bits) moves
    one unit away from zero under rounding ``mode``; ``rnd`` holds the random bits."""
    if mode == NEAREST_EVEN or mode == NEAREST_AWAY:
        if d >= 64:
            return False
        half = U1 << np.uint64(d - 1)
        if mode == NEAREST_EVEN:
            return rem > half or (rem == half and (kept & U1) == U1)
        return rem >= half
    if mode == TOWARD_ZERO:
        return False
    if mode == UP:
        return rem != U0 and not neg
    if mode == DOWN:
        return rem != U0 and neg
    if mode == TO_ODD:
        return rem != U0 and (kept & U1) == U0
    # STOCHASTIC (P3109 StochasticA): floor(rem / 2^d * 2^n) + R >= 2^n, R the top n random bits
    t = d - nbits
    if t >= 64:
        top = U0
    elif t >= 0:
        top = rem >> np.uint64(t)
    else:
        top = rem << np.uint64(-t)
    return top + (rnd >> np.uint64(64 - nbits)) >= (U1 << np.uint64(nbits))


@jit_inline
def overflow_value(neg, mode, p, maxval, from_inf):
    """What a value beyond +-max (or an infinite input) becomes under the overflow policy."""
    policy = p.overflow
    toward_zero = mode == TOWARD_ZERO or (mode == DOWN and not neg) or (mode == UP and neg)
    if policy == SATURATE or (policy == SATURATE_KEEP_INF and not from_inf) or (
            toward_zero and not from_inf and policy != SATURATE_KEEP_INF):
        mag = maxval
    elif policy == NAN:
        return np.nan
    else:
        mag = np.inf
    return -mag if neg else mag


@jit_inline
def quantize_one(x, p, maxval, minval, mode, rnd, nbits):
    """x (float64) rounded to the format described by ``p``; returns a float64."""
    b = f64_bits(x)
    neg = (b >> np.uint64(63)) != U0
    ebits = np.int64((b >> np.uint64(52)) & EXP_MASK)
    frac = b & FRAC
    if ebits == 0x7FF:
        if frac != U0:
            return x
        return _finish(overflow_value(neg, mode, p, maxval, True), neg, p, minval)
    if ebits == 0 and frac == U0:
        if p.zero == 0:
            return np.nan if p.has_nan == 1 else minval
        return _finish(0.0, neg, p, minval)
    if ebits == 0:
        ex, sig = np.int64(-1022), frac
    else:
        ex, sig = ebits - 1023, frac | IMPLICIT
    m = p.mantissa_bits
    if ex >= p.emin:
        q = ex - m
    elif p.subnormals == 1:
        q = p.emin - m
    elif p.zero == 1:
        q = np.int64(p.emin)  # flushed: the grid below min normal is {0, min normal}
    else:
        return _finish(minval, neg, p, minval)  # no zero: min normal is the only neighbour
    d = q - (ex - 52)
    if d <= 0:
        mag = abs(x)
    else:
        if d < 64:
            kept = sig >> np.uint64(d)
            rem = sig & ((U1 << np.uint64(d)) - U1)
        else:
            kept, rem = U0, sig
        if round_away(kept, rem, d, mode, neg, rnd, nbits):
            kept += U1
        mag = np.float64(kept) * pow2(q)
    if mag > maxval:
        return _finish(overflow_value(neg, mode, p, maxval, False), neg, p, minval)
    return _finish(-mag if neg else mag, neg, p, minval)


@jit_inline
def _finish(v, neg, p, minval):
    """Apply the zero-sign and unsigned rules to a rounded value."""
    if v == 0.0:
        return -0.0 if (neg and p.negative_zero == 1) else 0.0
    if p.signed == 0 and v < 0.0:
        if p.overflow == SATURATE:
            return 0.0 if p.zero == 1 else minval
        return np.nan if p.has_nan == 1 else (0.0 if p.zero == 1 else minval)
    return v


@jit_inline
def _quantize_span(x, out, start, stop, p, maxval, minval, mode, key, offset, nbits):
    for i in range(start, stop):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        out[i] = quantize_one(np.float64(x[i]), p, maxval, minval, mode, rnd, nbits)


@jit_parallel
def quantize_float(x, out, p, maxval, minval, mode, key, offset, nbits):
    """Quantise the flat array ``x`` into ``out`` (same length; float32 or float64)."""
    n = x.size
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        # one specialised loop per mode, so that each inner loop is branch-free and vectorises
        if mode == NEAREST_EVEN:
            _quantize_span(x, out, start, stop, p, maxval, minval, NEAREST_EVEN, key, offset, nbits)
        elif mode == NEAREST_AWAY:
            _quantize_span(x, out, start, stop, p, maxval, minval, NEAREST_AWAY, key, offset, nbits)
        elif mode == TOWARD_ZERO:
            _quantize_span(x, out, start, stop, p, maxval, minval, TOWARD_ZERO, key, offset, nbits)
        elif mode == UP:
            _quantize_span(x, out, start, stop, p, maxval, minval, UP, key, offset, nbits)
        elif mode == DOWN:
            _quantize_span(x, out, start, stop, p, maxval, minval, DOWN, key, offset, nbits)
        elif mode == TO_ODD:
            _quantize_span(x, out, start, stop, p, maxval, minval, TO_ODD, key, offset, nbits)
        else:
            _quantize_span(x, out, start, stop, p, maxval, minval, STOCHASTIC, key, offset, nbits)


@jit_inline
def value_to_code(v, negative, p):
    """Code of a value already on the format's grid (NaN -> NaN code; -1 if there is none)."""
    sign = (U1 << np.uint64(p.bits - 1)) if p.signed == 1 else U0
    if v != v:
        if p.has_nan == 0:
            return np.int64(-1)
        code = np.uint64(p.nan_code)
        if negative and p.negative_zero == 1:
            code |= sign
        return np.int64(code)
    s = sign if v < 0.0 or (v == 0.0 and negative and p.negative_zero == 1) else U0
    a = abs(v)
    if a == np.inf:
        return np.int64(np.uint64(p.inf_code) | s)
    if a == 0.0:
        return np.int64(s)
    b = f64_bits(a)
    e = np.int64(b >> np.uint64(52))
    mant = b & FRAC
    m = p.mantissa_bits
    min_field = 1 if p.zero == 1 else 0
    if e == 0:
        mag = mant >> np.uint64(p.emin - m + 1074)
    elif e - 1023 >= p.emin:
        mag = (np.uint64(e - 1023 - p.emin + min_field) << np.uint64(m)) | (
            mant >> np.uint64(52 - m))
    else:
        mag = (mant | IMPLICIT) >> np.uint64(52 - m + p.emin - (e - 1023))
    return np.int64(mag | s)


@jit_parallel
def encode_float(x, codes, p, maxval, minval, mode, key, offset, nbits):
    """Codes of ``x`` rounded to the format; returns how many NaN had no code to go to."""
    n = x.size
    nchunks = (n + CHUNK - 1) // CHUNK
    bad = 0
    for c in prange(nchunks):
        start = c * CHUNK
        for i in range(start, min(n, start + CHUNK)):
            rnd = U0
            if mode == STOCHASTIC:
                rnd = counter_bits(key, np.uint64(offset + i))
            xi = np.float64(x[i])
            v = quantize_one(xi, p, maxval, minval, mode, rnd, nbits)
            code = value_to_code(v, (f64_bits(xi) >> np.uint64(63)) != U0, p)
            if code < 0:
                bad += 1
                code = 0
            codes[i] = code
    return bad


@jit_inline
def code_to_value(code, p):
    c = np.uint64(code)
    m = p.mantissa_bits
    neg = False
    if p.signed == 1:
        sbit = U1 << np.uint64(p.bits - 1)
        if p.specials == SPECIALS_FNUZ and c == sbit:
            return np.nan  # FNUZ: NaN at the -0 code
        neg = (c & sbit) != U0
        c &= sbit - U1
    e = np.int64(c >> np.uint64(m))
    f = c & ((U1 << np.uint64(m)) - U1)
    all_e = (1 << (p.bits - p.signed - m)) - 1
    if p.has_inf == 1 and e == all_e:
        v = np.inf if f == U0 else np.nan
    elif p.specials == SPECIALS_FN and c == np.uint64(p.nan_code):
        v = np.nan
    elif e == 0 and p.zero == 1:
        v = np.float64(f) * pow2(p.emin - m) if p.subnormals == 1 else 0.0
    else:
        min_field = 1 if p.zero == 1 else 0
        v = np.float64(f | (U1 << np.uint64(m))) * pow2(e - min_field + p.emin - m)
    return -v if neg else v


@jit_parallel
def decode_float(codes, out, p):
    n = codes.size
    for i in prange(n):
        out[i] = code_to_value(codes[i], p)

"""Numba kernels for radix-2 float formats: quantise, encode, decode.

Every input value is widened to float64 (exact for float16/32/64) and its significand rounded as
an integer, so results are bit-exact and independent of the host's float rounding. A kernel sees
numbers, arrays and the ``FloatKernelParams`` tuple only.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import bits_f64, f64_bits, jit_force_inline, jit_inline, jit_parallel
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


@jit_force_inline
def quantize_one(x, p, maxval, minval, mode, rnd, nbits):
    """x (float64) rounded to the format described by ``p``; returns a float64.

    The significand is rounded as an integer: ``kept`` holds the bits above the quantum of the
    result's binade, ``rem`` the ``d`` dropped bits. One flat body (no calls), so that it inlines
    into the loops and vectorises.
    """
    b = f64_bits(x)
    neg = (b >> np.uint64(63)) != U0
    ebits = np.int64((b >> np.uint64(52)) & EXP_MASK)
    frac = b & FRAC
    ex = max(ebits, 1) - 1023
    sig = frac | (IMPLICIT if ebits != 0 else U0)
    m = p.mantissa_bits
    if ex >= p.emin or p.subnormals == 1:
        q = max(ex, p.emin) - m
    else:
        q = np.int64(p.emin)  # flushed: below min normal the grid is {0, min normal}
    d = q - ex + 52
    dd = np.uint64(min(max(d, 0), 63))  # sig < 2^53, so d > 63 behaves like 63 for these tests
    kept = sig >> dd
    rem = sig & ((U1 << dd) - U1)
    half = (U1 << dd) >> U1
    odd = (kept & U1) == U1
    if mode == NEAREST_EVEN:
        up = (half != U0) and (rem > half or (rem == half and odd))
    elif mode == NEAREST_AWAY:
        up = (half != U0) and rem >= half
    elif mode == TOWARD_ZERO:
        up = False
    elif mode == UP:
        up = rem != U0 and not neg
    elif mode == DOWN:
        up = rem != U0 and neg
    elif mode == TO_ODD:
        up = rem != U0 and not odd
    else:  # STOCHASTIC (P3109 StochasticA): floor(rem / 2^d * 2^n) + R >= 2^n, true d
        t = d - nbits
        if t >= 64:
            top = U0
        elif t >= 0:
            top = rem >> np.uint64(t)
        else:
            top = rem << np.uint64(-t)
        up = top + (rnd >> np.uint64(64 - nbits)) >= (U1 << np.uint64(nbits))
    s = max(q, ex - 52)  # exponent of kept's last bit (d <= 0: the input is already on the grid)
    mag = np.float64(kept + (U1 if up else U0)) * pow2(s)
    toward_zero = mode == TOWARD_ZERO or (mode == DOWN and not neg) or (mode == UP and neg)
    policy = p.overflow
    if ebits == 0x7FF:
        if frac != U0:
            return x
        if policy == SATURATE:
            mag = maxval
        elif policy == NAN:
            return np.copysign(np.nan, x)
        else:
            mag = np.inf
    elif mag > maxval:
        if policy == SATURATE or policy == SATURATE_KEEP_INF or toward_zero:
            mag = maxval
        elif policy == NAN:
            return np.copysign(np.nan, x)
        else:
            mag = np.inf
    elif ebits == 0 and frac == U0 and p.zero == 0:
        if p.has_nan == 1:
            return np.nan  # zero has no code
        return np.copysign(minval, x) if p.signed == 1 else minval  # (-0 too: no sign)
    elif ex < p.emin and p.zero == 0:
        mag = minval  # no zero: the smallest value is the only neighbour below it
    if mag == 0.0:
        return -0.0 if (neg and p.negative_zero == 1) else 0.0
    if neg and p.signed == 0:
        if p.overflow == SATURATE or p.has_nan == 0:
            return 0.0 if p.zero == 1 else minval
        return np.nan
    return -mag if neg else mag


@jit_parallel
def quantize_float(x, out, p, maxval, minval, mode, key, offset, nbits):
    """Quantise the flat array ``x`` into ``out`` (same length; float32 or float64)."""
    for i in prange(x.size):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        out[i] = quantize_one(np.float64(x[i]), p, maxval, minval, mode, rnd, nbits)


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
    bad = 0
    for i in prange(x.size):
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

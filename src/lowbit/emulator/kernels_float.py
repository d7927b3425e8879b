"""Numba kernels for radix-2 float formats: quantise, encode, decode.

Every input value is widened to float64 (exact for float16/32/64) and its significand rounded as
an integer, so results are bit-exact and independent of the host's float rounding. A kernel sees
numbers, arrays and the ``FloatKernelParams`` tuple only.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import CHUNK, bits_f64, f64_bits, jit_force_inline, jit_inline, jit_parallel
from .rng import counter_bits

U0 = np.uint64(0)
U1 = np.uint64(1)
FRAC = np.uint64((1 << 52) - 1)
IMPLICIT = np.uint64(1 << 52)
EXP_MASK = np.uint64(0x7FF)
SIGN = np.uint64(1 << 63)

NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, UP, DOWN, TO_ODD, STOCHASTIC = range(7)
SATURATE, SATURATE_KEEP_INF, INFINITY, NAN = range(4)
SPECIALS_IEEE, SPECIALS_FN, SPECIALS_FNUZ, SPECIALS_NONE = range(4)


@jit_inline
def pow2(e):
    """2.0**e as float64 for -1074 <= e <= 1023, built from bits (a select, no branch)."""
    normal = bits_f64(np.uint64(max(e, -1022) + 1023) << np.uint64(52))
    sub = bits_f64(U1 << np.uint64(min(max(e + 1074, 0), 63)))
    return normal if e >= -1022 else sub


@jit_force_inline
def quantize_one(x, p, maxval, minval, mode, rnd, nbits):
    """x (float64) rounded to the format described by ``p``; returns a float64.

    The significand is rounded as an integer: ``kept`` holds the bits above the quantum of the
    result's binade, ``rem`` the ``d`` dropped bits. One flat body (no calls), so that it inlines
    into the loops and vectorises: conditions on the data are combined with ``&``/``|`` and
    resolved by selects; only conditions on ``p`` (the same for every element) and the rare
    inf/NaN, overflow and no-zero cases branch.
    """
    b = f64_bits(x)
    neg = (b >> np.uint64(63)) != U0
    ebits = np.int64((b >> np.uint64(52)) & EXP_MASK)
    frac = b & FRAC
    ex = max(ebits, 1) - 1023
    sig = frac | (IMPLICIT if ebits != 0 else U0)
    m = p.mantissa_bits
    emin = np.int64(p.emin)
    # below min normal without subnormals the grid is {0, min normal}: the quantum is 2^emin
    q = max(ex, emin) - m if (ex >= emin) | (p.subnormals == 1) else emin
    d = q - ex + 52
    dd = np.uint64(min(max(d, 0), 63))  # sig < 2^53, so d > 63 behaves like 63 for these tests
    kept = sig >> dd
    rem = sig & ((U1 << dd) - U1)
    half = (U1 << dd) >> U1
    odd = (kept & U1) == U1
    if mode == NEAREST_EVEN:
        up = (half != U0) & ((rem > half) | ((rem == half) & odd))
    elif mode == NEAREST_AWAY:
        up = (half != U0) & (rem >= half)
    elif mode == TOWARD_ZERO:
        up = False
    elif mode == UP:
        up = (rem != U0) & (not neg)
    elif mode == DOWN:
        up = (rem != U0) & neg
    elif mode == TO_ODD:
        up = (rem != U0) & (not odd)
    else:  # STOCHASTIC (P3109 StochasticA): floor(rem / 2^d * 2^n) + R >= 2^n, true d
        # t = d - nbits; rem < 2^53, so t >= 64 gives 0 through the clamped right shift, and
        # d <= 0 (rem = 0) gives 0 whatever the left shift
        t = d - nbits
        top = (rem >> np.uint64(min(max(t, 0), 63))) << np.uint64(min(max(-t, 0), 63))
        up = top + (rnd >> np.uint64(64 - nbits)) >= (U1 << np.uint64(nbits))
    # |x| with the d dropped bits cleared, plus one quantum if up (a carry moves into the
    # exponent field); d > 52 leaves nothing kept: 0 or the quantum 2^q (then q = emin - m
    # or emin, the same for every element); d <= 0: the input is already on the grid
    trunc = (((b & ~SIGN) >> dd) + (U1 if up else U0)) << dd
    tiny = f64_bits(pow2(q)) if up else U0
    mag = bits_f64(trunc if d <= 52 else tiny)
    toward_zero = (mode == TOWARD_ZERO) | ((mode == DOWN) & (not neg)) | ((mode == UP) & neg)
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
    elif p.zero == 0:
        if ebits == 0 and frac == U0:
            if p.has_nan == 1:
                return np.nan  # zero has no code
            return np.copysign(minval, x) if p.signed == 1 else minval  # (-0 too: no sign)
        if ex < p.emin:
            mag = minval  # no zero: the smallest value is the only neighbour below it
    if p.signed == 0 and neg and mag != 0.0:
        if p.overflow == SATURATE or p.has_nan == 0:
            return 0.0 if p.zero == 1 else minval
        return np.nan
    # the sign of x, except that a zero result is -0.0 only where the format has one
    minus = neg & ((mag != 0.0) | (p.negative_zero == 1))
    return bits_f64(f64_bits(mag) | (SIGN if minus else U0))


@jit_inline
def _quantize_span(x, out, lo, hi, p, maxval, minval, mode, key, offset, nbits):
    """``out[lo:hi]`` from ``x[lo:hi]`` under the constant ``mode``: a loop that vectorises."""
    for i in range(lo, hi):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        out[i] = quantize_one(np.float64(x[i]), p, maxval, minval, mode, rnd, nbits)


@jit_parallel
def quantize_float(x, out, p, maxval, minval, mode, key, offset, nbits):
    """Quantise the flat array ``x`` into ``out`` (same length; float32 or float64).

    Blocks of ``CHUNK`` elements are spread over threads; each block runs a loop specialised
    to its (constant) mode."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        # one call per constant mode, so that each loop is specialised
        if mode == NEAREST_EVEN:
            _quantize_span(x, out, lo, hi, p, maxval, minval, 0, key, offset, nbits)
        elif mode == NEAREST_AWAY:
            _quantize_span(x, out, lo, hi, p, maxval, minval, 1, key, offset, nbits)
        elif mode == TOWARD_ZERO:
            _quantize_span(x, out, lo, hi, p, maxval, minval, 2, key, offset, nbits)
        elif mode == UP:
            _quantize_span(x, out, lo, hi, p, maxval, minval, 3, key, offset, nbits)
        elif mode == DOWN:
            _quantize_span(x, out, lo, hi, p, maxval, minval, 4, key, offset, nbits)
        elif mode == TO_ODD:
            _quantize_span(x, out, lo, hi, p, maxval, minval, 5, key, offset, nbits)
        else:
            _quantize_span(x, out, lo, hi, p, maxval, minval, 6, key, offset, nbits)


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

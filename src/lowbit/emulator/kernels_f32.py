"""The fast path: float32 in, float32 out, radix-2 formats whose values are all float32 normals
or subnormals with ``emin >= -126`` and at most 22 mantissa bits (every FP8/FP6/FP4, fp16, bf16,
tf32, ...). Works on the float32 bit pattern with integer selects only, one loop per rounding
mode, so LLVM vectorises each loop; results equal the general float64 kernel bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import bits_f32, f32_bits, jit, jit_force_inline, jit_parallel
from .kernels_float import DOWN, NEAREST_AWAY, NEAREST_EVEN, STOCHASTIC, TO_ODD, TOWARD_ZERO, UP
from .kernels_stream import STREAM_CHUNK, STREAM_MIN, rne_magic_stream
from .llvm_round import NEAREST_EVEN_MAGIC, ROUNDERS, round_ne_magic
from .rng import counter_bits

round_ne, round_na, round_tz, round_up, round_down, round_odd, round_sr = ROUNDERS


@jit_force_inline
def round_bits(x, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits, negzero,
               mode, rnd, nbits):
    """float32 ``x`` rounded to ``m`` mantissa bits above binary exponent ``emin``.

    ``over_pos``/``over_neg`` are the magnitude bits a positive/negative overflow becomes,
    ``inf_bits`` what an infinite input becomes, ``minpos_bits`` the smallest positive value.
    """
    b = np.int64(f32_bits(x))
    sign = b & 0x80000000
    a = b & 0x7FFFFFFF
    e = a >> 23
    ex = max(e, 1) - 127
    sig = (a & 0x7FFFFF) | (0x800000 if e > 0 else 0)
    if sub == 1:
        d = 23 - m + max(0, emin - ex)
    else:
        d = 23 - m if ex >= emin else 23 + emin - ex
    dd = min(d, 25)  # beyond 25 every bit of sig is below half a quantum
    mask = (1 << dd) - 1
    kept = sig >> dd
    rem = sig & mask
    half = (1 << dd) >> 1
    if mode == NEAREST_EVEN:  # the classic bit trick: add half - 1 plus the kept parity
        r = (sig + half - 1 + (kept & 1)) & ~mask
        up = False
    else:
        if mode == NEAREST_AWAY:
            up = rem >= half
        elif mode == TOWARD_ZERO:
            up = False
        elif mode == UP:
            up = (rem != 0) & (sign == 0)
        elif mode == DOWN:
            up = (rem != 0) & (sign != 0)
        elif mode == TO_ODD:
            up = (rem != 0) & ((kept & 1) == 0)
        else:  # STOCHASTIC: floor(rem / 2^d * 2^n) + R >= 2^n, on the true (unclamped) d
            t = d - nbits
            top = (rem >> min(t, 63)) if t >= 0 else (rem << (-t))
            up = top + np.int64(rnd >> np.uint64(64 - nbits)) >= (1 << nbits)
        r = (kept + (1 if up else 0)) << dd
    out = ((max(e, 1) - 1) << 23) + r
    if r == 0:
        out = 0
    if d >= 25:
        out = minpos_bits if up else 0
    if out > max_bits:
        out = over_neg if sign != 0 else over_pos
    if a >= 0x7F800000:
        out = (a | 0x400000) if a > 0x7F800000 else inf_bits
    if out != 0 or negzero == 1:
        out |= sign
    return bits_f32(np.uint32(out))


@jit_parallel
def quantize_f32(x, out, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits,
                 negzero, mode, key, offset, nbits):
    """Quantise float32 ``x`` into float32 ``out`` (flat, same length). ``mode`` is a rounding
    mode or ``NEAREST_EVEN_MAGIC`` (RNE in fewer instructions, where ``magic_rne_ok``; with
    streaming stores from ``STREAM_MIN`` elements on: ``kernels_stream``)."""
    n = x.size
    if mode == NEAREST_EVEN_MAGIC and n >= STREAM_MIN:
        for c in prange((n + STREAM_CHUNK - 1) // STREAM_CHUNK):
            rne_magic_stream(x, out, c * STREAM_CHUNK, min(n, (c + 1) * STREAM_CHUNK), m, emin,
                             sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits, negzero)
    elif mode == NEAREST_EVEN_MAGIC:
        for i in prange(n):
            out[i] = round_ne_magic(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                                    minpos_bits, negzero)
    elif mode == NEAREST_EVEN:
        for i in prange(n):
            out[i] = round_ne(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                              minpos_bits, negzero)
    elif mode == NEAREST_AWAY:
        for i in prange(n):
            out[i] = round_na(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                              minpos_bits, negzero)
    elif mode == TOWARD_ZERO:
        for i in prange(n):
            out[i] = round_tz(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                              minpos_bits, negzero)
    elif mode == UP:
        for i in prange(n):
            out[i] = round_up(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                              minpos_bits, negzero)
    elif mode == DOWN:
        for i in prange(n):
            out[i] = round_down(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                                minpos_bits, negzero)
    elif mode == TO_ODD:
        for i in prange(n):
            out[i] = round_odd(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                               minpos_bits, negzero)
    else:
        for i in prange(n):
            out[i] = round_sr(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                              minpos_bits, negzero, key, np.uint64(offset + i), nbits)
    if mode == STOCHASTIC and nbits > 32:
        _stochastic_fixup(x, out, m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                          minpos_bits, negzero, key, offset, nbits)


@jit_parallel
def _stochastic_fixup(x, out, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits,
                      negzero, key, offset, nbits):
    """The 32-bit stochastic rounder is exact unless more than 32 bits are dropped (|x| below
    2^-9 of the smallest positive value) with more than 32 random bits: redo those in 64 bits.
    A separate function, so that numba does not fuse it into the main loop; a cheap counting
    pass first, because a loop holding the redo call runs several times slower even when the
    call is never taken."""
    tiny = np.int64(f32_bits(np.float32(2.0 ** (emin - (m if sub == 1 else 0) - 9))))
    count = 0
    for i in prange(x.size):
        count += (np.int64(f32_bits(x[i])) & 0x7FFFFFFF) < tiny
    if count == 0:
        return
    for i in prange(x.size):
        if (np.int64(f32_bits(x[i])) & 0x7FFFFFFF) < tiny:
            out[i] = _redo(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                           minpos_bits, negzero, counter_bits(key, np.uint64(offset + i)), nbits)


@jit
def _redo(x, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits, negzero, rnd,
          nbits):
    return round_bits(x, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits,
                      negzero, STOCHASTIC, rnd, nbits)


@jit_parallel
def quantize_f32_reference(x, out, m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                           minpos_bits, negzero, mode, key, offset, nbits):
    """The same, through the 64-bit numba body for every mode (the tests' cross-check of the
    32-bit LLVM rounders)."""
    for i in prange(x.size):
        rnd = counter_bits(key, np.uint64(offset + i))
        out[i] = round_bits(x[i], m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                            minpos_bits, negzero, mode, rnd, nbits)


@jit_parallel
def codes_from_f32(v, codes, m, emin, bits, nan_code, inf_code, negzero):
    """Codes of float32 values already on the format's grid (the output of ``quantize_f32``).
    Returns how many were NaN in a format with no NaN code (``nan_code < 0``)."""
    sign_bit = np.int64(1) << (bits - 1)
    bad = 0
    for i in prange(v.size):
        b = np.int64(f32_bits(v[i]))
        neg = (b >> 31) != 0
        a = b & 0x7FFFFFFF
        e = a >> 23
        ex = max(e, 1) - 127
        sig = (a & 0x7FFFFF) | (0x800000 if e > 0 else 0)
        normal = ((ex - emin + 1) << m) | ((a & 0x7FFFFF) >> (23 - m))
        sub = sig >> min(23 - m + emin - ex, 63)
        mag = normal if (e > 0) & (ex >= emin) else sub
        s = sign_bit if (neg & ((a != 0) | (negzero == 1))) else 0
        code = mag | s
        if a == 0x7F800000:
            code = inf_code | s
        if a > 0x7F800000:
            bad += nan_code < 0
            code = max(nan_code, 0) | (sign_bit if (neg & (negzero == 1)) else 0)
        codes[i] = code
    return bad


@jit_parallel
def to_f32_odd(x, out):
    """float64 ``x`` rounded to odd at float32 (``out``): the truncation toward zero with its
    last bit set when anything was dropped (the result stays finite for finite ``x``: beyond
    float32's range it is +-max). A following rounding to at most 21 bits in any deterministic
    mode equals that of ``x`` itself (``quantize`` uses it for float64 input)."""
    for i in prange(x.size):
        v = x[i]
        f = np.float32(v)
        back = np.float64(f)
        inexact = (back != v) & (v == v)
        away = np.abs(back) > np.abs(v)
        drop = np.uint32(1) if inexact & away else np.uint32(0)
        odd = np.uint32(1) if inexact else np.uint32(0)
        out[i] = bits_f32(np.uint32((f32_bits(f) - drop) | odd))


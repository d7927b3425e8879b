"""Numba kernel for mantissa-less radix-4 formats (IBM's radix-4 FP4 and its odd-phase grid):
values 0 and 2^(s + 2k) for kmin <= k <= kmax. Closed form from the float64 exponent, with
bitwise selects only, so it vectorises; equal to the table kernel (which the tests check).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import f64_bits, jit_force_inline, jit_parallel
from .kernels_float import (DOWN, NAN, SATURATE, SATURATE_KEEP_INF, STOCHASTIC, TOWARD_ZERO, U0,
                            UP, pow2)
from .kernels_table import away_from_lo, signed_result
from .rng import counter_bits


@jit_force_inline
def radix4_round(x, shift, kmin, kmax, p, mode, rnd, nbits):
    """(value, code) of x on the grid {0} u {2^(shift + 2k)}; ``p`` as in ``kernels_table``:
    (signed, mantissa_bits, overflow, sign_mask, negative_zero, nan_code, inf_code)."""
    b = f64_bits(x)
    neg = (b >> np.uint64(63)) != U0
    ebits = np.int64((b >> np.uint64(52)) & np.uint64(0x7FF))
    a = abs(x)
    k = (max(ebits, 1) - 1023 - shift) >> 1  # floor((E2 - shift) / 2); zero and f64 subnormals
    under = k < kmin                         # land far below kmin as well
    over_range = k > kmax
    kk = min(max(k, kmin), kmax)
    lo = 0.0 if under else pow2(shift + 2 * kk)
    hi = pow2(shift + 2 * kmin) if under else 4.0 * lo
    lo_odd = not under  # zero is even; a mantissa-less normal value is the implicit 1 (odd)
    away = away_from_lo(a, lo, hi, lo_odd, neg, mode, rnd, nbits)
    away = away | over_range | (a == np.inf)
    if x != x:
        return x, np.int64(p[5] if p[5] >= 0 else -2)
    field = kk - kmin + 1
    if away and (over_range or kk == kmax) and not under:  # overflow
        tz = (mode == TOWARD_ZERO) | ((mode == DOWN) & (not neg)) | ((mode == UP) & neg)
        finite_in = a != np.inf
        if p[2] == SATURATE or (finite_in and ((p[2] == SATURATE_KEEP_INF) | tz)):
            away = False
        elif p[2] == NAN:
            return signed_result(np.nan, np.int64(p[5] if p[5] >= 0 else -2), neg, p, 0.0, 0)
        else:
            inf_code = np.int64(-3) if p[6] < 0 else np.int64(p[6])
            return signed_result(np.inf, inf_code, neg, p, 0.0, 0)
    if under:
        mag = hi if away else 0.0
        code = np.int64(1) if away else np.int64(0)
    else:
        mag = hi if away else lo
        code = np.int64(field + 1) if away else np.int64(field)
    return signed_result(mag, code, neg, p, 0.0, 0)


@jit_parallel
def quantize_radix4(x, out, shift, kmin, kmax, p, mode, key, offset, nbits):
    """Values of ``x`` on the radix-4 grid."""
    for i in prange(x.size):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        out[i] = radix4_round(np.float64(x[i]), shift, kmin, kmax, p, mode, rnd, nbits)[0]


@jit_parallel
def encode_radix4(x, codes_out, shift, kmin, kmax, p, mode, key, offset, nbits):
    """Codes of ``x`` on the radix-4 grid; returns the count of results with no code.
    (Separate from the values kernel: a reduction in the same loop slows it down 4x.)"""
    bad = 0
    for i in prange(x.size):
        rnd = U0
        if mode == STOCHASTIC:
            rnd = counter_bits(key, np.uint64(offset + i))
        code = radix4_round(np.float64(x[i]), shift, kmin, kmax, p, mode, rnd, nbits)[1]
        if code < 0:
            bad += 1
            code = 0
        codes_out[i] = code
    return bad

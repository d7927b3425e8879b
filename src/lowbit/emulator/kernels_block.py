"""Numba kernels for block-scaled formats: per-block amax, power-of-two scale rules, scaling.

Each works on a C-contiguous ``(nblocks, block_size)`` array, one parallel item per block. The
power-of-two rules are exact: ``math.frexp`` splits ``amax = m * 2^E`` (``m`` in [0.5, 1)) with
no rounding, subnormals included.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import jit_inline, jit_parallel

FLOOR, CEIL = 0, 1


@jit_inline
def _amax(data, b):
    """``max_j |data[b, j]|`` as float64; NaN if the block holds a NaN."""
    m = np.float64(0.0)
    nan = False
    for j in range(data.shape[1]):
        a = abs(np.float64(data[b, j]))
        nan |= a != a
        m = a if a > m else m
    return np.nan if nan else m


@jit_inline
def pow2_exponent(amax, rule, emax, g, big_g, lo, hi):
    """The block's scale exponent in ``[lo, hi]``, or ``hi + 1`` for a NaN block.

    FLOOR (OCP MX 6.3): ``floor(log2 amax) - emax = E - 1 - emax``; NaN block if ``amax`` is not
    finite or the exponent exceeds ``hi``. CEIL (TE, ``cvt.rp.satfinite.ue8m0``): the smallest
    ``e`` with ``2^e >= amax / max_elem``; with ``max_elem = g 2^G`` that is ``E - G + (m > g)``
    (``m / g`` lies in (0.5, 2)); ``+inf`` gives ``hi`` (0xFE), NaN a NaN block. Both give ``lo``
    for ``amax == 0`` and clamp below at ``lo``.
    """
    if amax != amax:
        return hi + 1
    if amax == 0.0:
        return lo
    if amax == np.inf:
        return hi + 1 if rule == FLOOR else hi
    m, e = math.frexp(amax)
    if rule == FLOOR:
        shared = e - 1 - emax
        if shared > hi:
            return hi + 1
    else:
        shared = min(e - big_g + (1 if m > g else 0), hi)
    return max(shared, lo)


@jit_parallel
def mx_prescale(data, out, exps, rule, emax, g, big_g, lo, hi, nan_fill):
    """Scale exponents of each block into ``exps`` and ``out = data / 2^exp`` (in data's dtype).

    A NaN block (``exps[b] = hi + 1``) gets ``nan_fill`` in ``out``.
    """
    for b in prange(data.shape[0]):
        e = pow2_exponent(_amax(data, b), rule, emax, g, big_g, lo, hi)
        exps[b] = e
        if e > hi:
            for j in range(data.shape[1]):
                out[b, j] = nan_fill
        else:  # float64 product, exact unless it underflows: storing it rounds once
            f = math.ldexp(1.0, -e)
            for j in range(data.shape[1]):
                out[b, j] = np.float64(data[b, j]) * f


@jit_parallel
def block_amax(data, amax):
    """``amax[b] = max_j |data[b, j]|`` (float64; NaN if the block holds a NaN)."""
    for b in prange(data.shape[0]):
        amax[b] = _amax(data, b)


@jit_parallel
def scale_blocks(data, factor, out):
    """``out[b, j] = data[b, j] * factor[b]``, the product in the dtype of the operands."""
    for b in prange(data.shape[0]):
        f = factor[b]
        for j in range(data.shape[1]):
            out[b, j] = data[b, j] * f


@jit_parallel
def mx_postscale(q, exps, hi, out):
    """``out[b, j] = q[b, j] * 2^exps[b]`` rounded once to out's dtype; NaN for a NaN block."""
    for b in prange(q.shape[0]):
        e = exps[b]
        f = np.nan if e > hi else math.ldexp(1.0, e)
        for j in range(q.shape[1]):
            out[b, j] = np.float64(q[b, j]) * f

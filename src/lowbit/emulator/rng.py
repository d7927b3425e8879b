"""Counter-based random bits: a pure function of (seed, element index).

The 64 bits of element ``i`` are ``h(key, i, 0) << 32 | h(key, i, 1)``, where ``key`` is a 32-bit
key derived from the seed by SplitMix64's finaliser and ``h`` is a Weyl step of the index fed to
Wellons' ``lowbias32`` finaliser (a bijection of 32-bit words with low bias):

    z = key + lo32(i) * 0x9E3779B9 + hi32(i) * 0x85EBCA6B + lane * 0xC2B2AE35   (mod 2^32)
    z ^= z >> 16; z *= 0x7FEB352D; z ^= z >> 15; z *= 0x846CA68B; z ^= z >> 16

The same seed gives the same bits whatever the thread count, the chunking or the order of calls,
and a caller can reproduce any element's bits with :func:`random_bits`. Stochastic rounding with
``n <= 32`` random bits uses only the high word, computed in 32-bit SIMD lanes by the float32
kernels, which is why the generator is built from 32-bit words.
"""

from __future__ import annotations

import numpy as np

from ..formats.errors import InvalidArgument
from ._jit import jit_inline

__all__ = ["random_bits", "seed_key", "counter_bits", "hash32", "WEYL", "WEYL_HI", "LANE",
           "MUL1", "MUL2"]

WEYL, WEYL_HI, LANE = 0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35
MUL1, MUL2 = 0x7FEB352D, 0x846CA68B
_M32 = np.uint64(0xFFFFFFFF)
_W, _WH, _L = np.uint64(WEYL), np.uint64(WEYL_HI), np.uint64(LANE)
_A, _B = np.uint64(MUL1), np.uint64(MUL2)
_S16, _S15, _S32 = np.uint64(16), np.uint64(15), np.uint64(32)


@jit_inline
def hash32(key, index, lane):
    """32 random bits (in a uint64) for word ``lane`` (0 or 1) of element ``index``."""
    z = (key + (index & _M32) * _W + (index >> _S32) * _WH + lane * _L) & _M32
    z ^= z >> _S16
    z = (z * _A) & _M32
    z ^= z >> _S15
    z = (z * _B) & _M32
    return z ^ (z >> _S16)


@jit_inline
def counter_bits(key, index):
    """64 random bits for element ``index`` (uint64) of the stream ``key``."""
    return (hash32(key, index, np.uint64(0)) << _S32) | hash32(key, index, np.uint64(1))


def seed_key(seed: int | None) -> np.uint64:
    """The 32-bit stream key of a seed (as a uint64); ``None`` draws a fresh seed from the OS."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy) & ((1 << 64) - 1)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidArgument(f"seed={seed!r}: must be an int (or None for a fresh seed)")
    seed = int(seed)
    if not -(1 << 63) <= seed < (1 << 64):
        raise InvalidArgument(f"seed={seed!r}: must fit in 64 bits")
    z = (seed & ((1 << 64) - 1)) + 0x9E3779B97F4A7C15
    z &= (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    z ^= z >> 31
    return np.uint64((z ^ (z >> 32)) & 0xFFFFFFFF)


def _hash32_np(key: np.uint64, idx: np.ndarray, lane: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (key + (idx & _M32) * _W + (idx >> _S32) * _WH + np.uint64(lane) * _L) & _M32
        z ^= z >> _S16
        z = (z * _A) & _M32
        z ^= z >> _S15
        z = (z * _B) & _M32
        return z ^ (z >> _S16)


def random_bits(seed: int, index: np.ndarray | int) -> np.ndarray:
    """The 64 random bits lowbit uses for element ``index`` under ``seed`` (numpy, no numba).

    Stochastic rounding with ``random_bits=N`` uses the top ``N`` of these bits.

    Example:
        >>> bool(random_bits(1, 5) == random_bits(1, np.arange(8))[5])
        True
    """
    key = seed_key(seed)
    idx = np.asarray(index, dtype=np.uint64)
    return (_hash32_np(key, idx, 0) << _S32) | _hash32_np(key, idx, 1)

"""Counter-based random bits: a pure function of (seed, element index).

The generator is SplitMix64 evaluated at counter ``index + 1`` of the stream whose state starts
at ``mix(seed)``: the same seed gives the same bits whatever the thread count, the chunking or
the order of calls, and a caller can reproduce any element's bits with :func:`random_bits`.
"""

from __future__ import annotations

import numpy as np

from ..formats.errors import InvalidArgument
from ._jit import jit_inline

__all__ = ["random_bits", "seed_key", "mix64", "GOLDEN"]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@jit_inline
def mix64(z):
    """SplitMix64's finaliser (a bijection of uint64)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@jit_inline
def counter_bits(key, index):
    """64 random bits for element ``index`` (uint64) of the stream ``key``."""
    return mix64(key + (index + np.uint64(1)) * GOLDEN)


def seed_key(seed: int | None) -> np.uint64:
    """The stream key of a seed; ``None`` draws a fresh seed from the OS."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy) & ((1 << 64) - 1)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidArgument(f"seed={seed!r}: must be an int (or None for a fresh seed)")
    seed = int(seed)
    if not -(1 << 63) <= seed < (1 << 64):
        raise InvalidArgument(f"seed={seed!r}: must fit in 64 bits")
    with np.errstate(over="ignore"):
        return _mix64_np(np.uint64(seed & ((1 << 64) - 1)))


def _mix64_np(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def random_bits(seed: int, index: np.ndarray | int) -> np.ndarray:
    """The 64 random bits lowbit uses for element ``index`` under ``seed`` (numpy, no numba).

    Stochastic rounding with ``random_bits=N`` uses the top ``N`` of these bits.

    Example:
        >>> bool(random_bits(1, 5) == random_bits(1, np.arange(8))[5])
        True
    """
    key = seed_key(seed)
    idx = np.asarray(index, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix64_np(key + (idx + np.uint64(1)) * GOLDEN)

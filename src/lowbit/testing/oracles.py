"""Exact oracles for users' own tests: the ``Fraction`` reference and value comparison helpers.

Example:
    >>> import numpy as np
    >>> from fractions import Fraction
    >>> from lowbit import FORMATS
    >>> from lowbit.testing.oracles import neighbours, round_exact, same_values
    >>> neighbours(Fraction(5), FORMATS["e2m1fn"])
    (Fraction(4, 1), Fraction(6, 1))
    >>> float(round_exact(Fraction(5), FORMATS["e2m1fn"]))
    4.0
    >>> same_values(np.array([np.nan, -0.0, 1.0]), np.array([np.nan, -0.0, 1.0]))
    True
"""

from __future__ import annotations

import numpy as np

from ..formats.reference import decode_exact, encode_exact, neighbours, round_exact

__all__ = ["round_exact", "encode_exact", "decode_exact", "neighbours", "same_values",
           "mismatches"]


def mismatches(actual, expected) -> np.ndarray:
    """Indices (into the flattened arrays) where ``actual`` and ``expected`` differ as values:
    NaN matches NaN, and ``-0.0`` does not match ``+0.0``.

    Example:
        >>> mismatches(np.array([0.0, np.nan, 2.0]), np.array([-0.0, np.nan, 2.0])).tolist()
        [0]
    """
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {e.shape}")
    both_nan = np.isnan(a) & np.isnan(e)
    same = (a == e) & (np.signbit(a) == np.signbit(e))
    return np.flatnonzero(~(both_nan | same))


def same_values(actual, expected) -> bool:
    """Whether two arrays hold the same values bit for bit up to NaN payloads (see
    :func:`mismatches`)."""
    return mismatches(actual, expected).size == 0

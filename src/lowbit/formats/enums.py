"""Small enums, one per independent option (the cpfloat style)."""

from __future__ import annotations

import enum

__all__ = ["Rounding", "Specials", "Overflow", "ScaleRule"]


class Rounding(enum.IntEnum):
    """How a real number is turned into one of its two neighbours in a format.

    ``NEAREST_EVEN`` breaks ties toward the neighbour whose integer significand is even; for a
    format with no mantissa bits the significand is the implicit 1 (odd), so its ties go away
    from zero -- the rule ``ml_dtypes`` applies to E8M0. ``STOCHASTIC`` rounds away from zero with
    probability equal to the distance from the lower neighbour over the gap (P3109 ``StochasticA``),
    using a configurable number of random bits drawn from a counter-based generator.
    """

    NEAREST_EVEN = 0
    NEAREST_AWAY = 1
    TOWARD_ZERO = 2
    UP = 3
    DOWN = 4
    TO_ODD = 5
    STOCHASTIC = 6


class Specials(enum.IntEnum):
    """Which codes hold infinities and NaN.

    * ``IEEE``: the all-ones exponent holds +-inf (mantissa 0) and NaN (mantissa != 0).
    * ``FN``: finite; only the all-ones magnitude code is NaN (OCP E4M3, E8M0).
    * ``FNUZ``: finite, one NaN at the negative-zero code, no -0 (Graphcore/AMD FP8).
    * ``NONE``: every code is a finite number (FP4/FP6 elements, radix-4 FP4).
    """

    IEEE = 0
    FN = 1
    FNUZ = 2
    NONE = 3


class Overflow(enum.IntEnum):
    """What a finite value beyond the largest finite value (after rounding) becomes.

    * ``SATURATE``: +-max, and +-inf inputs also become +-max (P3109 SatFinite, CUDA SATFINITE).
    * ``SATURATE_KEEP_INF``: finite overflow gives +-max, +-inf inputs stay infinite (P3109
      SatPropagate); only for formats with infinities.
    * ``INFINITY``: +-inf (IEEE); only for formats with infinities.
    * ``NAN``: NaN (OCP E4M3 non-saturating conversion); only for formats with a NaN.

    With ``INFINITY`` and ``NAN``, directed rounding toward zero (``TOWARD_ZERO``, ``DOWN`` for
    positive and ``UP`` for negative values) gives +-max as IEEE 754 prescribes.
    """

    SATURATE = 0
    SATURATE_KEEP_INF = 1
    INFINITY = 2
    NAN = 3


class ScaleRule(enum.IntEnum):
    """How a block's shared scale is derived from the block's largest magnitude (amax).

    * ``FLOOR``: OCP MX v1.0 section 6.3: ``2^(floor(log2 amax) - emax_elem)``; the block maximum may
      then exceed the element range and saturate.
    * ``CEIL``: NVIDIA's round-up rule (Transformer Engine MXFP8, ``cvt.rp.satfinite.ue8m0``): the
      smallest power of two ``>= amax / max_elem``; nothing saturates.
    * ``NVFP4``: ``amax / max_elem`` rounded to nearest-even in the scale format (E4M3), after the
      FP32 per-tensor scale, in Transformer Engine's order of operations.
    """

    FLOOR = 0
    CEIL = 1
    NVFP4 = 2

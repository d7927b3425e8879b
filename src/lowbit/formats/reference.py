"""The exact scalar reference: rounding onto any lowbit format with ``Fraction`` arithmetic only.

Nothing here touches numba or numpy floats: a real number (a ``Fraction``, or a Python float for
NaN, +-inf and -0.0) is rounded by the documented semantics, step by step:

1. find the two neighbours ``lo <= |x| < hi`` on the format's grid, extended without bound above
   ``max`` (radix 2: the P3109 section 4.7.4 integer-significand algorithm; radix 4: a search over
   the sorted magnitudes plus the next grid point beyond ``max``);
2. decide ``RoundAway`` from ``nu = (|x| - lo) / (hi - lo)`` and the parity of ``lo``'s integer
   significand (zero is even; a format without mantissa bits has the implicit, odd, 1);
3. apply the overflow policy to a result beyond ``max``, then the signed-zero, no-zero and
   unsigned rules.

Example:
    >>> from fractions import Fraction
    >>> from lowbit.formats import FORMATS, Rounding
    >>> from lowbit.formats.reference import round_exact, encode_exact
    >>> round_exact(Fraction(464), FORMATS["e4m3fn"])          # a tie: 448 has the even significand
    Fraction(448, 1)
    >>> round_exact(465.0, FORMATS["e4m3fn"])                  # overflow under the NAN policy
    nan
    >>> round_exact(Fraction(3), FORMATS["e8m0fnu"])           # M = 0: ties go away from zero
    Fraction(4, 1)
    >>> round_exact(Fraction(1, 3), FORMATS["e2m1fn"], Rounding.STOCHASTIC, random_value=200,
    ...             random_bits=8)                             # floor(2/3 * 256) + 200 >= 256
    Fraction(1, 2)
    >>> hex(encode_exact(-0.0, FORMATS["e4m3fn"]))
    '0x80'
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Union

from .enums import Overflow, Rounding
from .float_format import FloatFormat
from .int_format import BinaryFormat, IntFormat, IntOverflow

__all__ = ["round_exact", "encode_exact", "decode_exact", "neighbours", "Real"]

Real = Union[Fraction, float]
_ANY = (FloatFormat, IntFormat, BinaryFormat)


def round_exact(x: Real, fmt: FloatFormat | IntFormat | BinaryFormat,
                rounding: Rounding | str = Rounding.NEAREST_EVEN, random_value: int | None = None,
                random_bits: int = 62, overflow: Overflow | str | None = None) -> Real:
    """``x`` rounded to ``fmt``: a ``Fraction``, or a float for NaN, +-inf and -0.0.

    ``random_value`` (an int in ``[0, 2**random_bits)``) is the ``R`` of P3109 StochasticA and is
    required for ``Rounding.STOCHASTIC``: the result moves away from zero iff
    ``floor(nu * 2**random_bits) + R >= 2**random_bits``. For :class:`BinaryFormat` it is +1 iff
    ``R < (x + 1) / 2 * 2**random_bits``. ``overflow`` overrides a float format's policy.

    Example:
        >>> from lowbit.formats import FORMATS, Rounding
        >>> round_exact(Fraction(5, 2), FORMATS["int4"], Rounding.NEAREST_EVEN)
        Fraction(2, 1)
        >>> round_exact(1e9, FORMATS["e5m2"], Rounding.TOWARD_ZERO)   # directed: +-max, not inf
        Fraction(57344, 1)
    """
    mode = _as_rounding(rounding)
    if not isinstance(fmt, _ANY):
        raise TypeError(f"fmt={fmt!r}: round_exact takes a FloatFormat, IntFormat or BinaryFormat")
    if mode == Rounding.STOCHASTIC:
        _check_random(random_value, random_bits)
    if isinstance(x, float) and math.isnan(x):
        return math.nan
    if isinstance(fmt, BinaryFormat):
        return _round_binary(x, mode, random_value, random_bits)
    if isinstance(fmt, IntFormat):
        return _round_int(x, fmt, mode, random_value, random_bits)
    if overflow is not None:
        from dataclasses import replace
        policy = Overflow[overflow.upper()] if isinstance(overflow, str) else Overflow(overflow)
        fmt = replace(fmt, overflow=policy)
    return _round_float(x, fmt, mode, random_value, random_bits)


def decode_exact(code: int, fmt: FloatFormat | IntFormat | BinaryFormat) -> Real:
    """The exact value of ``code`` (the records' own ``decode_exact``)."""
    return fmt.decode_exact(code)


def encode_exact(x: Real, fmt: FloatFormat | IntFormat | BinaryFormat,
                 rounding: Rounding | str = Rounding.NEAREST_EVEN, random_value: int | None = None,
                 random_bits: int = 62, overflow: Overflow | str | None = None) -> int:
    """The code of ``round_exact(x, ...)``; raises ``ValueError`` where the format has no code for
    the result (NaN or inf in a finite format). A NaN gets the canonical NaN code, with the sign
    bit of ``x`` where the format has signed NaN codes (IEEE and FN signed formats).

    Example:
        >>> from lowbit.formats import FORMATS
        >>> encode_exact(1.0, FORMATS["e4m3fnuz"]), encode_exact(-9.0, FORMATS["int4"], "toward_zero")
        (64, 8)
    """
    v = round_exact(x, fmt, rounding, random_value, random_bits, overflow)
    if isinstance(fmt, BinaryFormat):
        return int(v > 0)
    if isinstance(fmt, IntFormat):
        if isinstance(v, float):
            raise ValueError(f"{fmt.name} has no code for {v!r}")
        return int(v / fmt.step) % fmt.code_count
    if overflow is not None:
        from dataclasses import replace
        fmt = replace(fmt, overflow=Overflow[overflow.upper()] if isinstance(overflow, str)
                      else Overflow(overflow))
    return _float_code(v, fmt, _is_negative(x))


def neighbours(x: Real, fmt: FloatFormat | IntFormat | BinaryFormat) -> tuple[Real, Real]:
    """``(lo, hi)``: the largest value of ``fmt`` that is ``<= x`` and the smallest ``>= x``
    (``-inf`` / ``+inf`` where there is none); ``lo == hi == x`` when ``x`` is representable.

    Example:
        >>> from lowbit.formats import FORMATS
        >>> neighbours(Fraction(5), FORMATS["e2m1fn"]), neighbours(7.0, FORMATS["e2m1fn"])
        ((Fraction(4, 1), Fraction(6, 1)), (Fraction(6, 1), inf))
    """
    x = Fraction(x)
    if isinstance(fmt, BinaryFormat):
        vals = (Fraction(-1), Fraction(1))
        return (max((v for v in vals if v <= x), default=-math.inf),
                min((v for v in vals if v >= x), default=math.inf))
    if isinstance(fmt, FloatFormat) and not fmt.zero and x == 0:
        return (-fmt.min_normal if fmt.signed else -math.inf), fmt.min_normal
    sat = _saturating(fmt)
    lo, hi = round_exact(x, sat, Rounding.DOWN), round_exact(x, sat, Rounding.UP)
    lo = -math.inf if (isinstance(lo, float) and math.isnan(lo)) or lo > x else lo
    hi = math.inf if (isinstance(hi, float) and math.isnan(hi)) or hi < x else hi
    return (Fraction(0) if lo == 0 else lo), (Fraction(0) if hi == 0 else hi)


# ------------------------------------------------------------------------------ helpers
def _saturating(fmt):
    """The format with a saturating overflow policy (so that DOWN/UP never leave the range)."""
    from dataclasses import replace
    if isinstance(fmt, IntFormat):
        return replace(fmt, overflow=IntOverflow.SATURATE)
    return replace(fmt, overflow=Overflow.SATURATE)


def _as_rounding(rounding: Rounding | str) -> Rounding:
    if isinstance(rounding, Rounding):
        return rounding
    if isinstance(rounding, str) and rounding.upper() in Rounding.__members__:
        return Rounding[rounding.upper()]
    raise ValueError(f"rounding={rounding!r}: allowed: {', '.join(Rounding.__members__)}")


def _check_random(random_value: object, random_bits: object) -> None:
    if not isinstance(random_bits, int) or not 1 <= random_bits <= 64:
        raise ValueError(f"random_bits={random_bits!r}: must be an int in [1, 64]")
    if not isinstance(random_value, int) or not 0 <= random_value < (1 << random_bits):
        raise ValueError(f"random_value={random_value!r}: STOCHASTIC needs an int in "
                         f"[0, 2**{random_bits})")


def _is_negative(x: Real) -> bool:
    if isinstance(x, float):
        return math.copysign(1.0, x) < 0
    return x < 0


def _round_away(mode: Rounding, nu: Fraction, lo_odd: bool, neg: bool, r: int | None, n: int) -> bool:
    """P3109 ``RoundAway``: whether ``lo + nu * (hi - lo)`` (0 <= nu < 1) rounds to ``hi``."""
    if nu == 0:
        return False
    if mode == Rounding.NEAREST_EVEN:
        return nu > Fraction(1, 2) or (nu == Fraction(1, 2) and lo_odd)
    if mode == Rounding.NEAREST_AWAY:
        return nu >= Fraction(1, 2)
    if mode == Rounding.TOWARD_ZERO:
        return False
    if mode == Rounding.UP:
        return not neg
    if mode == Rounding.DOWN:
        return neg
    if mode == Rounding.TO_ODD:
        return not lo_odd
    return math.floor(nu * (1 << n)) + r >= (1 << n)


def _toward_zero(mode: Rounding, neg: bool) -> bool:
    return mode == Rounding.TOWARD_ZERO or (mode == Rounding.DOWN and not neg) or (
        mode == Rounding.UP and neg)


# ------------------------------------------------------------------------------ floats
def _round_float(x: Real, fmt: FloatFormat, mode: Rounding, r: int | None, n: int) -> Real:
    neg = _is_negative(x)
    if isinstance(x, float) and math.isinf(x):
        return _finish(_overflow(fmt, mode, neg, from_inf=True), neg, fmt)
    a = abs(Fraction(x))
    if a == 0:
        if fmt.zero:
            return _finish(Fraction(0), neg, fmt)
        # no zero: +-0 is NaN, or +-min (by the sign of the zero) without a NaN code
        return math.nan if fmt.has_nan else _finish(fmt.min_normal, neg, fmt)
    if not fmt.zero and a < fmt.min_normal:
        return _finish(fmt.min_normal, neg, fmt)  # no zero: min normal is the only neighbour
    lo, hi, lo_odd = _grid(a, fmt)
    mag = hi if _round_away(mode, (a - lo) / (hi - lo), lo_odd, neg, r, n) else lo
    if mag > fmt.max:
        return _finish(_overflow(fmt, mode, neg, from_inf=False), neg, fmt)
    return _finish(mag, neg, fmt)


def _grid(a: Fraction, fmt: FloatFormat) -> tuple[Fraction, Fraction, bool]:
    """Neighbours ``lo <= a < hi`` on the grid unbounded above, and the parity of ``lo``."""
    if fmt.radix == 2:
        return _grid_radix2(a, fmt)
    mags, odd, beyond = _magnitudes(fmt)
    if a >= beyond:  # every grid point from here up lies beyond max: any rounding overflows
        return beyond, beyond * fmt.radix, False
    if a >= mags[-1]:
        return mags[-1], beyond, odd[-1]
    i = max(j for j in range(len(mags)) if mags[j] <= a)
    return mags[i], mags[i + 1], odd[i]


def _grid_radix2(a: Fraction, fmt: FloatFormat) -> tuple[Fraction, Fraction, bool]:
    """P3109 section 4.7.4: ``Q = max(floor(log2 a), emin) - M``, ``S = floor(a / 2^Q)``."""
    emin, _ = fmt.binary_exponent_range
    m = fmt.mantissa_bits
    if a < fmt.min_normal and not fmt.subnormals:
        return Fraction(0), fmt.min_normal, False  # flushed: the grid below min normal is {0, min}
    q = max(_floor_log2(a), emin) - m
    num, den = a.numerator, a.denominator
    kept = num // (den << q) if q >= 0 else (num << -q) // den  # floor(a / 2^q)
    unit = Fraction(1 << q) if q >= 0 else Fraction(1, 1 << -q)
    return kept * unit, (kept + 1) * unit, kept % 2 == 1


def _floor_log2(a: Fraction) -> int:
    num, den = a.numerator, a.denominator
    e = num.bit_length() - den.bit_length()
    return e if (num << max(-e, 0)) >= (den << max(e, 0)) else e - 1


@lru_cache(maxsize=None)
def _magnitudes(fmt: FloatFormat) -> tuple[tuple[Fraction, ...], tuple[bool, ...], Fraction]:
    """Distinct finite magnitudes ascending, the parity of each one's integer significand, and the
    next point of the unbounded grid beyond ``max``."""
    first: dict[Fraction, int] = {}
    for code in range(1 << fmt.magnitude_bits):
        v = fmt.magnitude_value(code)
        if v is not None and v not in first:
            first[v] = code
    mags = tuple(sorted(first))
    odd = tuple(v != 0 and (fmt.mantissa_bits == 0 or first[v] % 2 == 1) for v in mags)
    m, top = fmt.mantissa_bits, fmt.max_magnitude_code
    e = top >> m
    ulp = Fraction(1, 1 << m) * Fraction(fmt.radix) ** (e - fmt.bias) * (1 << fmt.exponent_shift)
    beyond = fmt.max + ulp if m and (top & ((1 << m) - 1)) != (1 << m) - 1 else \
        Fraction(fmt.radix) ** (e + 1 - fmt.bias) * (1 << fmt.exponent_shift)
    return mags, odd, beyond


def _overflow(fmt: FloatFormat, mode: Rounding, neg: bool, from_inf: bool) -> Real:
    """A signed value beyond +-max (or an infinite input) under the format's overflow policy."""
    policy = fmt.overflow
    if policy == Overflow.SATURATE or (policy == Overflow.SATURATE_KEEP_INF and not from_inf) or (
            _toward_zero(mode, neg) and not from_inf):
        mag: Real = fmt.max
    elif policy == Overflow.NAN:
        return math.nan
    else:
        mag = math.inf
    return -mag if neg else mag


def _finish(v: Real, neg: bool, fmt: FloatFormat) -> Real:
    """Apply the sign of ``x`` and the signed-zero and unsigned rules to a rounded magnitude."""
    if isinstance(v, float) and math.isnan(v):
        return v
    if v == 0:
        return -0.0 if (neg and fmt.negative_zero) else Fraction(0)
    v = -abs(v) if neg else abs(v)
    if not fmt.signed and v < 0:
        floor = Fraction(0) if fmt.zero else fmt.min_normal
        if fmt.overflow == Overflow.SATURATE or not fmt.has_nan:
            return floor
        return math.nan
    return v


def _float_code(v: Real, fmt: FloatFormat, negative: bool) -> int:
    sign = fmt.sign_mask
    if isinstance(v, float) and math.isnan(v):
        if fmt.nan_code is None:
            raise ValueError(f"{fmt.name} has no NaN code")
        return fmt.nan_code | (sign if negative and fmt.negative_zero else 0)
    s = sign if (v < 0 or (v == 0 and negative and fmt.negative_zero)) else 0
    if isinstance(v, float) and math.isinf(v):
        if fmt.inf_code is None:
            raise ValueError(f"{fmt.name} has no infinity")
        return fmt.inf_code | s
    return _magnitude_code(abs(Fraction(v)), fmt) | s


def _magnitude_code(a: Fraction, fmt: FloatFormat) -> int:
    if fmt.radix != 2 or fmt.bits <= 16:
        return _code_table(fmt)[a]
    if a == 0:
        return 0
    emin, _ = fmt.binary_exponent_range
    m, e = fmt.mantissa_bits, _floor_log2(a)
    min_field = 1 if fmt.zero else 0
    if e < emin:  # subnormal: field 0, significand a / 2^(emin - m)
        return int(a / Fraction(2) ** (emin - m))
    f = int(a / Fraction(2) ** (e - m)) - (1 << m)
    return ((e - emin + min_field) << m) | f


@lru_cache(maxsize=None)
def _code_table(fmt: FloatFormat) -> dict[Fraction, int]:
    table: dict[Fraction, int] = {}
    for code in range(1 << fmt.magnitude_bits):
        v = fmt.magnitude_value(code)
        if v is not None and v not in table:
            table[v] = code
    return table


# ------------------------------------------------------------------------------ integers, binary
def _round_int(x: Real, fmt: IntFormat, mode: Rounding, r: int | None, n: int) -> Real:
    wrap = fmt.overflow == IntOverflow.WRAP
    if isinstance(x, float) and math.isinf(x):
        if wrap:
            return math.nan
        return fmt.max if x > 0 else fmt.min
    y = Fraction(x) / fmt.step
    neg = y < 0
    kept = math.floor(abs(y))
    away = _round_away(mode, abs(y) - kept, kept % 2 == 1, neg, r, n)
    q = (kept + away) * (-1 if neg else 1)
    if not fmt.qmin <= q <= fmt.qmax:
        if wrap:
            q = (q - fmt.qmin) % fmt.code_count + fmt.qmin
        else:
            q = min(max(q, fmt.qmin), fmt.qmax)
    return q * fmt.step


def _round_binary(x: Real, mode: Rounding, r: int | None, n: int) -> Fraction:
    if mode == Rounding.NEAREST_EVEN:
        return Fraction(1) if x >= 0 else Fraction(-1)
    if mode != Rounding.STOCHASTIC:
        raise ValueError(f"rounding={mode.name}: the binary format takes NEAREST_EVEN or STOCHASTIC")
    if isinstance(x, float) and math.isinf(x):
        return Fraction(1) if x > 0 else Fraction(-1)
    p = min(max((Fraction(x) + 1) / 2, Fraction(0)), Fraction(1))
    return Fraction(1) if r < p * (1 << n) else Fraction(-1)

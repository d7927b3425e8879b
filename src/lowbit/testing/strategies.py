"""Hypothesis strategies over lowbit formats, for users' own property tests.

* :func:`formats`: catalogue records and random valid custom ``FloatFormat``/``IntFormat`` records;
* :func:`codes` / :func:`values`: every code, every representable value (specials included);
* :func:`hard_reals`: the inputs where rounding goes wrong -- ties between adjacent values and the
  floats just beside them, the overflow threshold, the subnormal edge, +-0, max, min subnormal;
* :func:`arrays_of`: numpy arrays of such inputs (float32 or float64).

Example:
    >>> import numpy as np
    >>> from hypothesis import given, settings
    >>> import lowbit
    >>> from lowbit.testing import strategies as lst
    >>> @settings(max_examples=20, deadline=None)
    ... @given(lst.formats(kinds=("float",), max_bits=8).flatmap(
    ...     lambda f: lst.hard_reals(f).map(lambda x: (f, x))))
    ... def test_idempotent(fx):
    ...     fmt, x = fx
    ...     once = lowbit.quantize(np.array([x]), fmt)
    ...     assert lowbit.testing.oracles.same_values(lowbit.quantize(once, fmt), once)
    >>> test_idempotent()
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..formats import (FORMATS, BinaryFormat, FloatFormat, IntFormat, IntOverflow,
                       InvalidFormatError, Overflow, Specials)

__all__ = ["formats", "custom_float_formats", "custom_int_formats", "codes", "values",
           "hard_reals", "arrays_of"]

_KINDS = {"float": FloatFormat, "int": IntFormat, "binary": BinaryFormat}


def formats(*, kinds: tuple[str, ...] = ("float", "int"), catalogue: bool = True,
            custom: bool = True, max_bits: int = 64) -> st.SearchStrategy:
    """Scalar format records: catalogue entries (block formats excluded) and random custom ones.

    Every record drawn has values that are all exact float64 numbers.

    Example:
        >>> from hypothesis import find
        >>> from lowbit import FORMATS
        >>> fmt = find(formats(custom=False, max_bits=8), lambda f: f.bits == 4)
        >>> fmt.bits, FORMATS[fmt.name] == fmt  # a 4-bit catalogue entry (which one may vary)
        (4, True)
    """
    bad = set(kinds) - set(_KINDS)
    if bad:
        raise ValueError(f"kinds={kinds!r}: allowed: {sorted(_KINDS)}")
    types = tuple(_KINDS[k] for k in kinds)
    options = []
    if catalogue:
        named = [f for f in (FORMATS[n] for n in FORMATS)
                 if isinstance(f, types) and f.bits <= max_bits and _fits64(f)]
        options.append(st.sampled_from(named))
    if custom and "float" in kinds:
        options.append(custom_float_formats(max_bits=max_bits))
    if custom and "int" in kinds:
        options.append(custom_int_formats(max_bits=max_bits))
    if not options:
        raise ValueError("formats(): nothing to draw from (catalogue=False and custom=False?)")
    return st.one_of(options)


def _fits64(fmt) -> bool:
    return fmt.fits_float64() if isinstance(fmt, FloatFormat) else True


@st.composite
def custom_float_formats(draw, max_bits: int = 16) -> FloatFormat:
    """Random valid ``FloatFormat`` records (radix 2 or 4, every specials/overflow policy).

    Example:
        >>> from hypothesis import find
        >>> find(custom_float_formats(), lambda f: f.radix == 4 and f.mantissa_bits > 0).radix
        4
    """
    radix = draw(st.sampled_from([2, 4]))
    signed = draw(st.booleans())
    e = draw(st.integers(1, 5 if radix == 4 else 8))
    m_hi = max(0, min(10, max_bits - e - int(signed), (16 if radix == 4 else 52) - e - int(signed)))
    m = draw(st.integers(0, m_hi))
    specials = draw(st.sampled_from(list(Specials)))
    zero = draw(st.booleans())
    fields = dict(name="custom", exponent_bits=e, mantissa_bits=m, radix=radix, signed=signed,
                  specials=specials, zero=zero,
                  subnormals=draw(st.booleans()) if zero else False,
                  exponent_shift=draw(st.integers(0, 1)) if radix == 4 else 0,
                  bias=draw(st.integers(-3, (1 << e) + 3) if radix == 2 else st.integers(-2, 1 << e)))
    try:
        fmt = FloatFormat(**fields)
    except InvalidFormatError:
        fmt = None
    if fmt is not None and specials == Specials.FNUZ and not zero:
        fmt = None  # NaN at the "-0" code would hide -min_normal (see tests/test_format_records)
    if fmt is None or fmt.bits > max_bits or not fmt.fits_float64():
        return draw(st.nothing())
    allowed = [o for o in Overflow if _policy_ok(fmt, o)]
    overflow = draw(st.sampled_from(allowed))
    from dataclasses import replace
    return replace(fmt, overflow=overflow,
                   name=f"custom_r{radix}e{e}m{m}b{fields['bias']}_{specials.name.lower()}"
                        f"{'' if signed else '_u'}{'' if zero else '_nz'}")


def _policy_ok(fmt: FloatFormat, policy: Overflow) -> bool:
    if policy in (Overflow.INFINITY, Overflow.SATURATE_KEEP_INF):
        return fmt.has_inf
    if policy == Overflow.NAN:
        return fmt.has_nan
    return True


@st.composite
def custom_int_formats(draw, max_bits: int = 16) -> IntFormat:
    """Random valid ``IntFormat`` records (signed/unsigned, symmetric, fixed point, wrapping).

    Example:
        >>> from hypothesis import find
        >>> find(custom_int_formats(), lambda f: f.overflow == IntOverflow.WRAP).symmetric
        False
    """
    bits = draw(st.integers(2, min(16, max_bits)))
    signed = draw(st.booleans())
    symmetric = signed and draw(st.booleans())
    wrap = not symmetric and draw(st.booleans())
    return IntFormat(name=f"custom_int{bits}", bits=bits, signed=signed, symmetric=symmetric,
                     fraction_bits=draw(st.integers(-4, 8)),
                     overflow=IntOverflow.WRAP if wrap else IntOverflow.SATURATE)


def codes(fmt) -> st.SearchStrategy[int]:
    """Every code of ``fmt`` (as an unsigned int), shrinking toward 0.

    Example:
        >>> from hypothesis import find
        >>> find(codes(FORMATS["e2m1fn"]), lambda c: c > 9)
        10
    """
    return st.integers(0, fmt.code_count - 1)


def values(fmt) -> st.SearchStrategy[float]:
    """Every value ``fmt`` represents, as a float: NaN, +-inf and -0.0 where the format has them.

    Example:
        >>> from hypothesis import find
        >>> find(values(FORMATS["e5m2"]), lambda v: v > 57344)
        inf
    """
    if fmt.bits <= 16:
        return st.sampled_from(_all_values(fmt))
    return codes(fmt).map(lambda c: float(fmt.decode_exact(c)))


@lru_cache(maxsize=256)
def _all_values(fmt) -> tuple[float, ...]:
    table = fmt.decode_table().tolist()
    out = sorted({v + 0.0 for v in table if not math.isnan(v)})  # -0.0 + 0.0 is +0.0
    if any(math.isnan(v) for v in table):
        out.append(math.nan)
    if any(v == 0 and math.copysign(1, v) < 0 for v in table):
        out.append(-0.0)
    return tuple(out)


@lru_cache(maxsize=256)
def _finite_sorted(fmt) -> tuple[float, ...]:
    """Every finite value once, ascending, as exact floats (formats of at most 16 bits)."""
    return tuple(fmt.values().tolist())


def _adjacent(fmt) -> st.SearchStrategy[tuple[Fraction, Fraction]]:
    """A pair of adjacent finite values ``lo < hi``."""
    if fmt.bits <= 16:
        vals = _finite_sorted(fmt)
        if len(vals) < 2:
            return st.nothing()
        return st.integers(0, len(vals) - 2).map(
            lambda i: (Fraction(vals[i]), Fraction(vals[i + 1])))

    def pair(code: int):
        a, b = fmt.decode_exact(code), fmt.decode_exact(code + 1)
        ok = all(isinstance(v, Fraction) or (v == 0 and math.isfinite(v)) for v in (a, b))
        return (Fraction(a), Fraction(b)) if ok and a != b else None
    return st.integers(0, (1 << (fmt.bits - int(fmt.signed))) - 2).map(pair).filter(
        lambda p: p is not None)


def _edges(fmt) -> list[Fraction | float]:
    """Fixed hard inputs: zeros, max, the overflow threshold, the smallest values."""
    top = Fraction(fmt.max)
    out: list[Fraction | float] = [Fraction(0), -0.0, top, math.inf, -math.inf, math.nan,
                                   Fraction(fmt.min_positive)]
    if isinstance(fmt, FloatFormat):
        beyond = _next_beyond(fmt)
        out += [(fmt.max + beyond) / 2, beyond, 2 * beyond, fmt.min_normal,
                fmt.min_normal / 2, fmt.min_positive / 2, 3 * fmt.min_positive / 4]
    elif isinstance(fmt, IntFormat):
        out += [fmt.max + fmt.step / 2, fmt.min - fmt.step / 2, fmt.step / 2, fmt.max + fmt.step]
    return out + [-v for v in out if isinstance(v, Fraction)]


def _next_beyond(fmt: FloatFormat) -> Fraction:
    """The next grid point above ``max`` (the value of the code after max, read as finite)."""
    m, code = fmt.mantissa_bits, fmt.max_magnitude_code + 1
    e, f = code >> m, code & ((1 << m) - 1)
    return (1 + Fraction(f, 1 << m)) * Fraction(fmt.radix) ** (e - fmt.bias) * (1 << fmt.exponent_shift)


def hard_reals(fmt, *, exact: bool = False) -> st.SearchStrategy:
    """Inputs where rounding is easy to get wrong, as floats (``exact=True``: ``Fraction``s, with
    floats only for NaN, +-inf and -0.0).

    Midpoints of adjacent values and, as floats, the float64 numbers just below and above them;
    just past overflow; the subnormal edge; +-0, +-max, +-min subnormal; +-inf and NaN.

    Example:
        >>> from hypothesis import find
        >>> find(hard_reals(FORMATS["e4m3fn"]), lambda x: 449 < x < 480 and x % 1 == 0)  # tie
        464.0
    """
    def mids(pair):
        lo, hi = pair
        mid = (lo + hi) / 2
        if exact:
            return st.sampled_from([mid, lo, hi, (3 * lo + hi) / 4])
        f = float(mid)
        return st.sampled_from([f, math.nextafter(f, -math.inf), math.nextafter(f, math.inf),
                                float(lo), float(hi)])
    edges = [v for v in _edges(fmt) if not isinstance(v, Fraction) or _in_float64(v)]
    if not exact:
        edges = [float(v) for v in edges]
        edges += [math.nextafter(v, d) for v in edges if math.isfinite(v) and v != 0
                  for d in (-math.inf, math.inf)]
    return st.one_of(st.sampled_from(edges), _adjacent(fmt).flatmap(mids))


def _in_float64(v: Fraction) -> bool:
    return v == 0 or 2.0 ** -1074 <= abs(v) <= sys.float_info.max


def arrays_of(fmt, dtype=np.float64, *, min_size: int = 0, max_size: int = 64,
              shape=None) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``dtype`` mixing :func:`hard_reals` of ``fmt`` (cast to ``dtype``) with arbitrary
    floats of that width.

    Example:
        >>> from hypothesis import find
        >>> find(arrays_of(FORMATS["e2m1fn"], np.float32, min_size=3), lambda a: True).dtype
        dtype('float32')
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype={dtype}: allowed: float32, float64")
    width = dtype.itemsize * 8

    def cast(v: float) -> float:
        with np.errstate(over="ignore"):
            return float(dtype.type(v))
    elements = st.one_of(hard_reals(fmt).map(cast), st.floats(width=width))
    if shape is None:
        shape = hnp.array_shapes(min_dims=1, max_dims=1, min_side=min_size, max_side=max_size)
    return hnp.arrays(dtype, shape, elements=elements)

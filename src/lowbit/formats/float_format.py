"""Floating-point formats of any exponent and mantissa width, bias, radix and special-value policy.

A :class:`FloatFormat` holds only independent facts; every other number (range, epsilon, code of
NaN, the parameters the kernels need) is derived from them exactly, as ``int`` or ``Fraction``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple

import numpy as np

from .enums import Overflow, Specials
from .errors import InvalidFormatError

__all__ = ["FloatFormat", "FloatKernelParams"]

_MAX_TABLE_BITS = 16


class FloatKernelParams(NamedTuple):
    """Everything a numba kernel needs to know about a float format, as plain integers."""

    mantissa_bits: int
    emin: int  #: binary exponent of the smallest normal binade (radix 2 only)
    emax: int  #: binary exponent of the largest binade
    max_significand: int  #: integer significand of the largest finite value, at ``emax``
    subnormals: int
    zero: int
    signed: int
    has_inf: int
    has_nan: int
    negative_zero: int
    overflow: int
    bits: int
    bias: int
    nan_code: int
    inf_code: int
    specials: int


@dataclass(frozen=True, kw_only=True)
class FloatFormat:
    """A sign-magnitude floating-point format.

    A code is ``sign | exponent field e | mantissa field f``. With radix ``r`` and ``s`` the
    ``exponent_shift``, a normal code (``e > 0``, or any ``e`` when the format has no zero) has the
    value ``(1 + f/2^M) * r^(e - bias) * 2^s``, a subnormal (``e == 0``) ``(f/2^M) * r^(1 - bias) * 2^s``.

    Example:
        >>> from lowbit import FloatFormat
        >>> e4m3 = FloatFormat(name="e4m3fn", exponent_bits=4, mantissa_bits=3, bias=7,
        ...                    specials=Specials.FN)
        >>> float(e4m3.max), float(e4m3.min_subnormal), e4m3.bits
        (448.0, 0.001953125, 8)
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    radix: int = 2  #: 4 for IBM's radix-4 FP4
    exponent_shift: int = 0  #: extra binary exponent, 0 <= shift < log2(radix); 1 gives the 2*4^k grid
    specials: Specials = Specials.IEEE
    subnormals: bool = True  #: False: values below the smallest normal round onto {0, min normal}
    signed: bool = True
    zero: bool = True  #: False: no zero code, exponent field 0 is a normal binade (E8M0)
    overflow: Overflow = field(default=None)  # type: ignore[assignment]  # None -> natural policy
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_int("exponent_bits", self.exponent_bits, 1, 11)
        _check_int("mantissa_bits", self.mantissa_bits, 0, 52)
        _check_int("bias", self.bias, -(2**20), 2**20)
        if self.radix not in (2, 4):
            raise InvalidFormatError(f"{self.name}: radix={self.radix!r}; allowed: 2 or 4")
        _check_int("exponent_shift", self.exponent_shift, 0, self.radix.bit_length() - 2)
        object.__setattr__(self, "specials", Specials(self.specials))
        if self.overflow is None:
            object.__setattr__(self, "overflow", self._natural_overflow())
        object.__setattr__(self, "overflow", Overflow(self.overflow))
        self._check_consistency()

    def _natural_overflow(self) -> Overflow:
        if self.specials == Specials.IEEE:
            return Overflow.INFINITY
        if self.specials in (Specials.FN, Specials.FNUZ):
            return Overflow.NAN
        return Overflow.SATURATE

    def _check_consistency(self) -> None:
        s, o = self.specials, self.overflow
        if s == Specials.IEEE and self.mantissa_bits == 0:
            raise InvalidFormatError(f"{self.name}: IEEE specials need mantissa_bits >= 1 to hold NaN")
        if s == Specials.FNUZ and not self.signed:
            raise InvalidFormatError(f"{self.name}: FNUZ puts NaN at the -0 code; it needs signed=True")
        if s == Specials.FNUZ and not self.zero:
            raise InvalidFormatError(f"{self.name}: FNUZ puts NaN at the -0 code, which a format "
                                     "with zero=False uses for -min; set zero=True")
        if o in (Overflow.INFINITY, Overflow.SATURATE_KEEP_INF) and not self.has_inf:
            raise InvalidFormatError(f"{self.name}: overflow={o.name} needs infinities; "
                                     f"allowed for specials={s.name}: {self._allowed_overflow()}")
        if o == Overflow.NAN and not self.has_nan:
            raise InvalidFormatError(f"{self.name}: overflow=NAN needs a NaN code; "
                                     f"allowed for specials={s.name}: {self._allowed_overflow()}")
        if not self.zero and (self.subnormals and self.mantissa_bits > 0):
            raise InvalidFormatError(f"{self.name}: zero=False makes exponent field 0 a normal binade; "
                                     "set subnormals=False")
        if self.radix != 2 and self.bits > _MAX_TABLE_BITS:
            raise InvalidFormatError(f"{self.name}: radix-{self.radix} formats are limited to "
                                     f"{_MAX_TABLE_BITS} bits, got {self.bits}")
        if self.max <= 0:
            raise InvalidFormatError(f"{self.name}: has no positive finite value")

    def _allowed_overflow(self) -> str:
        ok = [Overflow.SATURATE]
        if self.has_inf:
            ok += [Overflow.SATURATE_KEEP_INF, Overflow.INFINITY]
        if self.has_nan:
            ok.append(Overflow.NAN)
        return ", ".join(m.name for m in ok)

    # ----------------------------------------------------------------- primitive derived facts
    @property
    def bits(self) -> int:
        """Width of a code."""
        return int(self.signed) + self.exponent_bits + self.mantissa_bits

    @property
    def code_count(self) -> int:
        """Number of distinct codes, ``2**bits``."""
        return 1 << self.bits

    @property
    def has_inf(self) -> bool:
        return self.specials == Specials.IEEE

    @property
    def has_nan(self) -> bool:
        return self.specials != Specials.NONE

    @property
    def negative_zero(self) -> bool:
        """Whether -0 is a value (it is not in FNUZ and unsigned formats)."""
        return self.signed and self.zero and self.specials != Specials.FNUZ

    @property
    def magnitude_bits(self) -> int:
        return self.exponent_bits + self.mantissa_bits

    @property
    def sign_mask(self) -> int:
        return (1 << (self.bits - 1)) if self.signed else 0

    @cached_property
    def max_magnitude_code(self) -> int:
        """Code of the largest finite value."""
        all_ones = (1 << self.magnitude_bits) - 1
        if self.specials == Specials.IEEE:
            return all_ones - (1 << self.mantissa_bits)
        if self.specials == Specials.FN:
            return all_ones - 1
        return all_ones

    @property
    def nan_code(self) -> int | None:
        """The canonical (positive, quiet) NaN code, or ``None``."""
        m = self.mantissa_bits
        if self.specials == Specials.IEEE:
            return (((1 << self.exponent_bits) - 1) << m) | (1 << (m - 1))
        if self.specials == Specials.FN:
            return (1 << self.magnitude_bits) - 1
        if self.specials == Specials.FNUZ:
            return 1 << (self.bits - 1)
        return None

    @property
    def inf_code(self) -> int | None:
        """The +inf code, or ``None``."""
        if not self.has_inf:
            return None
        return ((1 << self.exponent_bits) - 1) << self.mantissa_bits

    # ----------------------------------------------------------------- exact values
    @property
    def _min_field(self) -> int:
        """Exponent field of the smallest normal binade."""
        return 1 if self.zero else 0

    def _scale(self, exponent: int) -> Fraction:
        return Fraction(self.radix) ** exponent * (1 << self.exponent_shift)

    def magnitude_value(self, magnitude_code: int) -> Fraction | None:
        """Exact value of a non-negative code without its sign bit; ``None`` for NaN/inf codes."""
        if self.is_special_magnitude(magnitude_code):
            return None
        m = self.mantissa_bits
        e, f = magnitude_code >> m, magnitude_code & ((1 << m) - 1)
        if e < self._min_field or (e == 0 and self.zero):
            if not self.subnormals and f != 0:
                return Fraction(0)  # flushed: the code exists but only means zero
            return Fraction(f, 1 << m) * self._scale(1 - self.bias)
        return (1 + Fraction(f, 1 << m)) * self._scale(e - self.bias)

    def is_special_magnitude(self, magnitude_code: int) -> bool:
        """Whether a magnitude code is NaN or infinity."""
        if self.specials == Specials.IEEE:
            return magnitude_code >> self.mantissa_bits == (1 << self.exponent_bits) - 1
        if self.specials == Specials.FN:
            return magnitude_code == (1 << self.magnitude_bits) - 1
        return False

    def decode_exact(self, code: int) -> Fraction | float:
        """Exact value of a code: a ``Fraction``, or a float for NaN, +-inf and -0."""
        if not 0 <= code < self.code_count:
            raise ValueError(f"code={code!r} out of range for {self.name}: 0..{self.code_count - 1}")
        negative = bool(code & self.sign_mask)
        mag = code & ~self.sign_mask & ((1 << self.bits) - 1)
        if self.specials == Specials.FNUZ and code == self.nan_code:
            return math.nan
        if self.is_special_magnitude(mag):
            if self.has_inf and mag == self.inf_code:
                return -math.inf if negative else math.inf
            return math.nan
        value = self.magnitude_value(mag)
        if value == 0 and negative:
            return -0.0
        return -value if negative else value

    @cached_property
    def max(self) -> Fraction:
        """Largest finite value."""
        return self.magnitude_value(self.max_magnitude_code)

    @cached_property
    def min_normal(self) -> Fraction:
        """Smallest positive normal value."""
        return self._scale(self._min_field - self.bias)

    @cached_property
    def min_subnormal(self) -> Fraction | None:
        """Smallest positive subnormal value, ``None`` when the format has none."""
        if not (self.zero and self.subnormals and self.mantissa_bits > 0):
            return None
        return Fraction(1, 1 << self.mantissa_bits) * self._scale(1 - self.bias)

    @property
    def min_positive(self) -> Fraction:
        """Smallest positive value (subnormal if the format has them)."""
        return self.min_subnormal if self.min_subnormal is not None else self.min_normal

    @property
    def epsilon(self) -> Fraction:
        """Relative gap at the start of a binade: ``2^-M``, or ``radix - 1`` without mantissa."""
        return Fraction(1, 1 << self.mantissa_bits) if self.mantissa_bits else Fraction(self.radix - 1)

    @property
    def dynamic_range_log2(self) -> float:
        """``log2(max / min_positive)``."""
        return math.log2(self.max) - math.log2(self.min_positive)

    # ----------------------------------------------------------------- enumerations
    def codes(self) -> np.ndarray:
        """Every code, ascending; only for formats of at most 16 bits."""
        self._check_enumerable()
        return np.arange(self.code_count, dtype=np.uint16 if self.bits > 8 else np.uint8)

    def values(self) -> np.ndarray:
        """Every finite value once (zero once), ascending, as float64; formats of at most 16 bits."""
        self._check_enumerable()
        mags = {self.magnitude_value(c) for c in range(1 << self.magnitude_bits)} - {None}
        vals = mags | ({-v for v in mags} if self.signed else set())
        return np.array(sorted(float(v) for v in vals), dtype=np.float64)

    def decode_table(self) -> np.ndarray:
        """float64 value of every code (NaN, +-inf and -0 as such); at most 16 bits."""
        self._check_enumerable()
        return np.array([float(self.decode_exact(c)) for c in range(self.code_count)])

    def _check_enumerable(self) -> None:
        if self.bits > _MAX_TABLE_BITS:
            raise ValueError(f"{self.name} has {self.bits} bits; enumeration is for formats of at "
                             f"most {_MAX_TABLE_BITS} bits")

    # ----------------------------------------------------------------- kernel view
    @cached_property
    def binary_exponent_range(self) -> tuple[int, int]:
        """Binary exponents of the smallest normal and the largest binade (radix 2 only)."""
        emin = self._min_field - self.bias
        emax = (self.max_magnitude_code >> self.mantissa_bits) - self.bias
        return emin, emax

    @cached_property
    def kernel_params(self) -> FloatKernelParams:
        """The integers the radix-2 kernels take (``radix == 2`` formats only)."""
        if self.radix != 2:
            raise InvalidFormatError(f"{self.name}: radix-{self.radix} formats use the table kernel")
        emin, emax = self.binary_exponent_range
        m = self.mantissa_bits
        top = self.max_magnitude_code
        sig = (top & ((1 << m) - 1)) | (1 << m)
        return FloatKernelParams(
            mantissa_bits=m, emin=emin, emax=emax, max_significand=sig,
            subnormals=int(self.subnormals), zero=int(self.zero), signed=int(self.signed),
            has_inf=int(self.has_inf), has_nan=int(self.has_nan),
            negative_zero=int(self.negative_zero), overflow=int(self.overflow), bits=self.bits,
            bias=self.bias, nan_code=self.nan_code if self.nan_code is not None else -1,
            inf_code=self.inf_code if self.inf_code is not None else -1,
            specials=int(self.specials))

    def fits_float32(self) -> bool:
        """Whether every value of this format is exactly a float32."""
        if self.radix != 2:
            return True
        emin, emax = self.binary_exponent_range
        return self.mantissa_bits <= 23 and emax <= 127 and emin - self.mantissa_bits >= -149

    def fits_float64(self) -> bool:
        if self.radix != 2:
            return True
        emin, emax = self.binary_exponent_range
        return self.mantissa_bits <= 52 and emax <= 1023 and emin >= -1022

    @property
    def summary(self) -> str:
        return (f"{self.name}: {self.bits} bits, e{self.exponent_bits}m{self.mantissa_bits}, "
                f"bias {self.bias}, radix {self.radix}, specials {self.specials.name}")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFormatError(f"{name}={value!r}: must be an int in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise InvalidFormatError(f"{name}={value!r}: must be in [{lo}, {hi}]")

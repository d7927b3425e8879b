"""Integer / fixed-point formats and the binary (+-1) format of binarised networks."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from .errors import InvalidFormatError
from .float_format import _check_int

__all__ = ["IntFormat", "IntOverflow", "IntKernelParams", "BinaryFormat"]


class IntOverflow(enum.IntEnum):
    """What an integer that does not fit becomes: clamped, or wrapped modulo ``2**bits``."""

    SATURATE = 0
    WRAP = 1


class IntKernelParams(NamedTuple):
    qmin: int
    qmax: int
    fraction_bits: int
    bits: int
    wrap: int
    signed: int


@dataclass(frozen=True, kw_only=True)
class IntFormat:
    """A two's-complement (or unsigned) integer with ``fraction_bits`` binary places.

    Code ``q`` (as a ``bits``-wide two's-complement integer) has the value ``q * 2**-fraction_bits``.
    ``symmetric`` drops the most negative code, so the range is ``[-qmax, qmax]``.

    Example:
        >>> from lowbit import IntFormat
        >>> int4 = IntFormat(name="int4", bits=4)
        >>> int4.qmin, int4.qmax, float(int4.max)
        (-8, 7, 7.0)
    """

    name: str
    bits: int
    signed: bool = True
    symmetric: bool = False
    fraction_bits: int = 0
    overflow: IntOverflow = IntOverflow.SATURATE
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, 1, 32)
        _check_int("fraction_bits", self.fraction_bits, -64, 64)
        object.__setattr__(self, "overflow", IntOverflow(self.overflow))
        if self.symmetric and not self.signed:
            raise InvalidFormatError(f"{self.name}: symmetric=True needs signed=True")
        if self.symmetric and self.bits == 1:
            raise InvalidFormatError(f"{self.name}: a symmetric 1-bit integer holds only 0; "
                                     "use BinaryFormat for +-1")
        if self.symmetric and self.overflow == IntOverflow.WRAP:
            raise InvalidFormatError(f"{self.name}: symmetric formats cannot wrap (the most "
                                     "negative code is unused); use overflow=SATURATE")

    @property
    def qmin(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + int(self.symmetric)

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - int(self.signed))) - 1

    @property
    def step(self) -> Fraction:
        return Fraction(2) ** -self.fraction_bits

    @property
    def max(self) -> Fraction:
        return self.qmax * self.step

    @property
    def min(self) -> Fraction:
        return self.qmin * self.step

    @property
    def min_positive(self) -> Fraction:
        return self.step

    @property
    def code_count(self) -> int:
        return 1 << self.bits

    @property
    def epsilon(self) -> Fraction:
        return self.step

    @property
    def dynamic_range_log2(self) -> float:
        return float(np.log2(self.qmax))

    def decode_exact(self, code: int) -> Fraction:
        """Exact value of a code given as an unsigned ``bits``-wide integer."""
        if not 0 <= code < self.code_count:
            raise ValueError(f"code={code!r} out of range for {self.name}: 0..{self.code_count - 1}")
        q = code - (1 << self.bits) if self.signed and code >> (self.bits - 1) else code
        return q * self.step

    def codes(self) -> np.ndarray:
        self._check_enumerable()
        return np.arange(self.code_count, dtype=np.uint16 if self.bits > 8 else np.uint8)

    def values(self) -> np.ndarray:
        """Every value, ascending (the unused most-negative code of symmetric formats excluded)."""
        self._check_enumerable()
        return np.arange(self.qmin, self.qmax + 1, dtype=np.float64) * float(self.step)

    def decode_table(self) -> np.ndarray:
        self._check_enumerable()
        return np.array([float(self.decode_exact(c)) for c in range(self.code_count)])

    def _check_enumerable(self) -> None:
        if self.bits > 16:
            raise ValueError(f"{self.name} has {self.bits} bits; enumeration is for at most 16")

    @property
    def kernel_params(self) -> IntKernelParams:
        return IntKernelParams(qmin=self.qmin, qmax=self.qmax, fraction_bits=self.fraction_bits,
                               bits=self.bits, wrap=int(self.overflow == IntOverflow.WRAP),
                               signed=int(self.signed))

    def fits_float32(self) -> bool:
        return self.bits <= 24 and -126 <= -self.fraction_bits and self.bits - self.fraction_bits < 127

    def fits_float64(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class BinaryFormat:
    """The +-1 format of binarised networks: ``sign(x)`` with ``sign(0) = +1``.

    Code 1 is +1 and code 0 is -1 (so that XNOR of codes is the product). Stochastic binarisation
    takes +1 with probability ``hard_sigmoid(x) = clip((x + 1) / 2, 0, 1)`` (Courbariaux et al. 2016).

    Example:
        >>> from lowbit import BinaryFormat
        >>> BinaryFormat(name="binary").values()
        array([-1.,  1.])
    """

    name: str = "binary"
    doc: str = field(default="", compare=False)

    bits: int = field(default=1, init=False)
    signed: bool = field(default=True, init=False)

    @property
    def max(self) -> Fraction:
        return Fraction(1)

    @property
    def min_positive(self) -> Fraction:
        return Fraction(1)

    @property
    def code_count(self) -> int:
        return 2

    @property
    def epsilon(self) -> Fraction:
        return Fraction(2)

    @property
    def dynamic_range_log2(self) -> float:
        return 0.0

    def decode_exact(self, code: int) -> Fraction:
        if code not in (0, 1):
            raise ValueError(f"code={code!r} out of range for {self.name}: 0 or 1")
        return Fraction(2 * code - 1)

    def codes(self) -> np.ndarray:
        return np.arange(2, dtype=np.uint8)

    def values(self) -> np.ndarray:
        return np.array([-1.0, 1.0])

    def decode_table(self) -> np.ndarray:
        return self.values()

    def fits_float32(self) -> bool:
        return True

    def fits_float64(self) -> bool:
        return True

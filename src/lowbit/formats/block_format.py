"""Block-scaled formats (OCP MX, NVFP4): an element format, a block size and a scale format."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Union

from .enums import ScaleRule, Specials
from .errors import InvalidFormatError
from .float_format import FloatFormat, _check_int
from .int_format import IntFormat

__all__ = ["BlockFormat"]

ElementFormat = Union[FloatFormat, IntFormat]


@dataclass(frozen=True, kw_only=True)
class BlockFormat:
    """``block_size`` consecutive values along ``axis`` share one scale; value = element * scale.

    With ``tensor_scale`` (NVFP4), a second, FP32 per-tensor scale divides the block scales so that
    they fit the scale format: value = element * block_scale * tensor_scale.

    Example:
        >>> from lowbit import FORMATS
        >>> mx = FORMATS["mxfp4"]
        >>> mx.block_size, mx.element.name, mx.scale.name, mx.bits_per_element
        (32, 'e2m1fn', 'e8m0fnu', 4.25)
    """

    name: str
    element: ElementFormat
    block_size: int
    scale: FloatFormat
    rule: ScaleRule = ScaleRule.FLOOR
    axis: int = -1
    tensor_scale: bool = False
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.element, (FloatFormat, IntFormat)):
            raise InvalidFormatError(f"{self.name}: element={self.element!r}; allowed: a FloatFormat "
                                     "or IntFormat record")
        if not isinstance(self.scale, FloatFormat):
            raise InvalidFormatError(f"{self.name}: scale={self.scale!r}; allowed: a FloatFormat")
        _check_int("block_size", self.block_size, 1, 1 << 16)
        _check_int("axis", self.axis, -64, 63)
        object.__setattr__(self, "rule", ScaleRule(self.rule))
        if self.rule in (ScaleRule.FLOOR, ScaleRule.CEIL) and not _is_power_of_two_format(self.scale):
            raise InvalidFormatError(f"{self.name}: rule={self.rule.name} needs a power-of-two scale "
                                     f"format (mantissa_bits=0), got {self.scale.name}")
        if self.rule == ScaleRule.NVFP4 and _is_power_of_two_format(self.scale):
            raise InvalidFormatError(f"{self.name}: rule=NVFP4 rounds the scale to nearest in a "
                                     "format with mantissa bits (e.g. e4m3fn/ue4m3)")
        if self.tensor_scale and self.rule != ScaleRule.NVFP4:
            raise InvalidFormatError(f"{self.name}: tensor_scale=True is the NVFP4 two-level scheme; "
                                     "use it with rule=NVFP4")

    @property
    def element_emax(self) -> int:
        """Binary exponent of the largest element binade (``emax_elem`` of the OCP MX spec)."""
        return math.floor(math.log2(self.element.max))

    @property
    def element_max(self) -> Fraction:
        return self.element.max

    @property
    def bits_per_element(self) -> float:
        return self.element.bits + self.scale.bits / self.block_size

    @property
    def bits(self) -> int:
        return self.element.bits

    @property
    def max(self) -> Fraction:
        """Largest magnitude the block format can hold (largest element times largest scale)."""
        return self.element.max * self.scale.max

    @property
    def min_positive(self) -> Fraction:
        return self.element.min_positive * self.scale.min_positive

    @property
    def epsilon(self) -> Fraction:
        return self.element.epsilon

    @property
    def dynamic_range_log2(self) -> float:
        return math.log2(self.max) - math.log2(self.min_positive)


def _is_power_of_two_format(fmt: FloatFormat) -> bool:
    return fmt.mantissa_bits == 0 and fmt.radix == 2 and fmt.specials in (Specials.FN, Specials.NONE)

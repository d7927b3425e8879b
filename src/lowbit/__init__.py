"""lowbit: bit-exact emulation of low-precision deep-learning arithmetic.

Importing ``lowbit`` compiles nothing: the numba kernels load on first use.

Example:
    >>> import numpy as np, lowbit
    >>> lowbit.quantize(np.array([0.1, 500.0], dtype=np.float32), "e4m3fn", overflow="saturate")
    array([1.015625e-01, 4.480000e+02], dtype=float32)
"""

from __future__ import annotations

from .formats import (
    FORMATS, BinaryFormat, BlockFormat, FloatFormat, IntFormat, IntOverflow, InvalidArgument,
    InvalidFormatError, Overflow, Rounding, ScaleRule, Specials, UnknownFormatError,
)

__version__ = "0.1.0"

_LAZY = {"quantize", "encode", "decode", "BlockCodes", "random_bits"}

__all__ = [
    "FORMATS", "BinaryFormat", "BlockCodes", "BlockFormat", "FloatFormat", "IntFormat",
    "IntOverflow", "InvalidArgument", "InvalidFormatError", "Overflow", "Rounding", "ScaleRule",
    "Specials", "UnknownFormatError", "decode", "encode", "quantize", "random_bits",
]


def __getattr__(name: str):
    if name in _LAZY:
        from . import emulator
        return getattr(emulator, name)
    raise AttributeError(f"module 'lowbit' has no attribute {name!r}")

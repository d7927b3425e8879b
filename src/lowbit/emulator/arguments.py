"""Argument checking shared by the public array functions: checked once, at the boundary."""

from __future__ import annotations

import numpy as np

from ..formats import FloatFormat, Format, InvalidArgument, Overflow, Rounding

__all__ = ["as_float_array", "check_rounding", "check_random_bits", "check_out", "check_offset",
           "resolve_overflow", "output_dtype"]

_FLOAT_KINDS = (np.float16, np.float32, np.float64)


def as_float_array(x: object, argument: str = "x") -> np.ndarray:
    """A float16/32/64 numpy view or copy of ``x``; integers and bools become float64."""
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise InvalidArgument(f"{argument}: cannot be read as a numeric array ({e})") from e
    if arr.dtype.type in _FLOAT_KINDS:
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    if arr.dtype.kind == "f":  # longdouble and other float widths the kernels do not take
        raise InvalidArgument(f"{argument}: dtype {arr.dtype}; allowed: float16, float32, float64")
    raise InvalidArgument(f"{argument}: dtype {arr.dtype} is not numeric; allowed: float16, "
                          "float32, float64 (integers and bools are converted to float64)")


def check_rounding(rounding: object) -> Rounding:
    if isinstance(rounding, Rounding):
        return rounding
    if isinstance(rounding, str):
        try:
            return Rounding[rounding.upper()]
        except KeyError:
            pass
    allowed = ", ".join(m.name for m in Rounding)
    raise InvalidArgument(f"rounding={rounding!r}: allowed: lowbit.Rounding.{{{allowed}}}")


def check_random_bits(random_bits: object) -> int:
    """Number of random bits for stochastic rounding: None means 62 (exact probabilities)."""
    if random_bits is None:
        return 62
    if isinstance(random_bits, (bool, np.bool_)) or not isinstance(random_bits, (int, np.integer)):
        raise InvalidArgument(f"random_bits={random_bits!r}: must be an int in [1, 62] or None")
    if not 1 <= random_bits <= 62:
        raise InvalidArgument(f"random_bits={random_bits!r}: must be in [1, 62] (None: exact)")
    return int(random_bits)


def check_offset(offset: object) -> int:
    if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, np.integer)) \
            or offset < 0:
        raise InvalidArgument(f"offset={offset!r}: must be a non-negative int (the index of the "
                              "first element in the random stream)")
    return int(offset)


def resolve_overflow(fmt: FloatFormat, overflow: object) -> FloatFormat:
    """The format with its overflow policy replaced, checked against its specials."""
    if overflow is None:
        return fmt
    try:
        policy = Overflow(overflow) if not isinstance(overflow, str) else Overflow[overflow.upper()]
    except (ValueError, KeyError) as e:
        allowed = ", ".join(m.name for m in Overflow)
        raise InvalidArgument(f"overflow={overflow!r}: allowed: lowbit.Overflow.{{{allowed}}}") from e
    if policy == fmt.overflow:
        return fmt
    from dataclasses import replace
    return replace(fmt, overflow=policy)


def output_dtype(x: np.ndarray, fmt: Format) -> np.dtype:
    """float32 for float16/32 input when every value of ``fmt`` is a float32, else float64."""
    if x.dtype != np.float64 and fmt.fits_float32():
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype,
              argument: str = "out") -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise InvalidArgument(f"{argument}: must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise InvalidArgument(f"{argument}: needs shape {shape} and dtype {dtype}, got "
                              f"{out.shape} {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidArgument(f"{argument}: must be C-contiguous and writeable")
    return out

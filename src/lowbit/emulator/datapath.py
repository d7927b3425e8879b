"""The records that describe one MAC array: operands, products, accumulation, scales and output.

Each part is a small frozen dataclass; a :class:`Datapath` composes them. Every accumulation record
has ``run(a, b, c, counters)``: ``a`` float64 ``[M, K]``, ``b`` float64 ``[K, N]`` (operand values,
scales not applied), ``c`` float64 ``[M, N]`` or ``None`` (the initial accumulator), ``counters``
an int64 array of length 4 or ``None``; it returns float64 ``[M, N]`` holding accumulator-format
values. K is accumulated in ascending order, each output element independently, so results do not
depend on the thread count. See ``docs/datapaths.md``.

Example:
    >>> import numpy as np, lowbit
    >>> from lowbit.emulator.datapath import Datapath, Sequential
    >>> dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="fp16"))
    >>> dp.accumulator_format.name, dp.output_format.name
    ('fp16', 'fp16')
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

import numpy as np

from ..formats import (BinaryFormat, FloatFormat, IntFormat, IntOverflow, InvalidArgument,
                       InvalidFormatError, Rounding, get_format)

__all__ = ["OperandMode", "Product", "Sequential", "Chunked", "Promoted", "Exact",
           "IntegerAccumulation", "BinaryAccumulation", "Scaling", "Datapath", "Accumulation",
           "DatapathError"]

OperandFormat = Union[FloatFormat, IntFormat, BinaryFormat]
NEAREST_EVEN = Rounding.NEAREST_EVEN


class DatapathError(InvalidFormatError):
    """A datapath whose parts contradict each other (a ``ValueError``)."""


class OperandMode(enum.IntEnum):
    """How operands meet their formats: ``QUANTIZE`` rounds them (RNE) first; ``CHECK`` requires
    them to be representable already and raises ``ValueError`` naming the first bad element."""

    QUANTIZE = 0
    CHECK = 1


class Accumulation(Protocol):
    def run(self, a: np.ndarray, b: np.ndarray, c: np.ndarray | None,
            counters: np.ndarray | None) -> np.ndarray: ...


def _float_format(fmt: Any, argument: str) -> FloatFormat:
    rec = get_format(fmt, argument)
    if not isinstance(rec, FloatFormat) or rec.radix != 2:
        raise DatapathError(f"{argument}={getattr(rec, 'name', rec)!r}: must be a radix-2 float "
                            "format (a FloatFormat record or a name such as 'fp16', 'binary32')")
    return rec


def _rounding(mode: Any, argument: str) -> Rounding:
    try:
        return Rounding[mode.upper()] if isinstance(mode, str) else Rounding(mode)
    except (KeyError, ValueError) as e:
        allowed = ", ".join(m.name for m in Rounding)
        raise InvalidArgument(f"{argument}={mode!r}: allowed: lowbit.Rounding.{{{allowed}}}") from e


def _positive_int(value: Any, argument: str, hi: int = 1 << 40) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= hi:
        raise DatapathError(f"{argument}={value!r}: must be an int in [1, {hi}]")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class Product:
    """Each product ``a*b``: exact (``format=None``) or rounded once to ``format``.

    Stochastic rounding of products is not modelled (no published MAC array does it).
    """

    format: FloatFormat | None = None
    rounding: Rounding = NEAREST_EVEN

    def __post_init__(self) -> None:
        if self.format is not None:
            object.__setattr__(self, "format", _float_format(self.format, "Product.format"))
        object.__setattr__(self, "rounding", _rounding(self.rounding, "Product.rounding"))
        if self.rounding == Rounding.STOCHASTIC:
            raise DatapathError("Product.rounding=STOCHASTIC: products take a deterministic mode")
        if self.format is not None and self.format.mantissa_bits > 50:
            raise DatapathError(f"Product.format={self.format.name}: at most 50 mantissa bits "
                                "(use format=None for exact products)")


@dataclass(frozen=True, kw_only=True)
class Sequential:
    """``acc = round(acc + p)`` for each product in ascending k, in ``format`` under ``rounding``.

    The sum ``acc + p`` is exact before the one rounding. ``STOCHASTIC`` draws the bits of output
    element ``e`` (row-major index) at step ``k`` from the counter-based stream of ``seed`` at
    index ``e * K + k`` (``random_bits`` of them; ``None``: 62, exact probabilities).
    A ``binary64`` accumulator takes ``NEAREST_EVEN`` only.
    """

    format: FloatFormat
    rounding: Rounding = NEAREST_EVEN
    seed: int = 0
    random_bits: int | None = None

    def __post_init__(self) -> None:
        fmt = _float_format(self.format, "Sequential.format")
        object.__setattr__(self, "format", fmt)
        object.__setattr__(self, "rounding", _rounding(self.rounding, "Sequential.rounding"))
        if fmt.mantissa_bits > 50 and (fmt.mantissa_bits != 52 or self.rounding != NEAREST_EVEN):
            raise DatapathError(f"Sequential.format={fmt.name}: formats with more than 50 mantissa "
                                "bits are supported only as binary64 with NEAREST_EVEN")
        if fmt.mantissa_bits == 52 and fmt.binary_exponent_range != (-1022, 1023):
            raise DatapathError(f"Sequential.format={fmt.name}: a 52-bit mantissa must be binary64")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InvalidArgument(f"Sequential.seed={self.seed!r}: must be an int")
        if self.random_bits is not None:
            _positive_int(self.random_bits, "Sequential.random_bits", 62)

    def run(self, a, b, c=None, counters=None):
        from .kernels_accumulate_api import run_chunked
        return run_chunked(a, b, c, counters, None, self, None)


@dataclass(frozen=True, kw_only=True)
class Chunked:
    """Chunks of ``chunk`` products summed by ``inner`` from zero; each chunk sum is then added
    into the ``outer`` accumulator (Wang et al. 2018; HFP8). ``c`` initialises ``outer``."""

    chunk: int
    inner: Sequential
    outer: Sequential

    def __post_init__(self) -> None:
        _positive_int(self.chunk, "Chunked.chunk")
        for name in ("inner", "outer"):
            if not isinstance(getattr(self, name), Sequential):
                raise DatapathError(f"Chunked.{name}={getattr(self, name)!r}: must be a Sequential")

    @property
    def format(self) -> FloatFormat:
        return self.outer.format

    def run(self, a, b, c=None, counters=None):
        from .kernels_accumulate_api import run_chunked
        return run_chunked(a, b, c, counters, self.chunk, self.inner, self.outer)


@dataclass(frozen=True, kw_only=True)
class Promoted:
    """Every ``interval`` products, ``inner`` (any accumulation, a fused tensor-core model
    included) sums its slice from zero and the partial is added into ``outer`` with its rounding
    (DeepSeek-V3: N_C = 128 into FP32). ``c`` initialises ``outer``."""

    interval: int
    inner: Any
    outer: Sequential

    def __post_init__(self) -> None:
        _positive_int(self.interval, "Promoted.interval")
        if not callable(getattr(self.inner, "run", None)):
            raise DatapathError(f"Promoted.inner={self.inner!r}: must be an accumulation record")
        if not isinstance(self.outer, Sequential):
            raise DatapathError(f"Promoted.outer={self.outer!r}: must be a Sequential")

    @property
    def format(self) -> FloatFormat:
        return self.outer.format

    def run(self, a, b, c=None, counters=None):
        from .kernels_accumulate_api import run_promoted
        return run_promoted(a, b, c, counters, self)


@dataclass(frozen=True, kw_only=True)
class Exact:
    """Exact (Kulisch) accumulation of the products and ``c``; one final rounding to ``format``."""

    format: FloatFormat = field(default="binary32")  # type: ignore[assignment]
    rounding: Rounding = NEAREST_EVEN

    def __post_init__(self) -> None:
        fmt = _float_format(self.format, "Exact.format")
        object.__setattr__(self, "format", fmt)
        object.__setattr__(self, "rounding", _rounding(self.rounding, "Exact.rounding"))
        if fmt.mantissa_bits > 50 or self.rounding == Rounding.STOCHASTIC:
            raise DatapathError(f"Exact: format={fmt.name}, rounding={self.rounding.name}: the "
                                "final rounding takes at most 50 mantissa bits and a "
                                "deterministic mode")

    def run(self, a, b, c=None, counters=None):
        from .kernels_accumulate_api import run_exact
        return run_exact(a, b, c, counters, self)


@dataclass(frozen=True, kw_only=True)
class IntegerAccumulation:
    """Integer products into a ``bits``-wide two's-complement accumulator, each MAC wrapped
    (modulo ``2**bits``) or saturated. Operands must be integer formats; ``run`` takes their
    integer codes (values times ``2**fraction_bits``)."""

    bits: int = 32
    overflow: IntOverflow = IntOverflow.WRAP

    def __post_init__(self) -> None:
        _positive_int(self.bits, "IntegerAccumulation.bits", 63)
        if self.bits < 2:
            raise DatapathError(f"IntegerAccumulation.bits={self.bits}: must be >= 2")
        object.__setattr__(self, "overflow", IntOverflow(self.overflow))

    def run(self, a, b, c=None, counters=None):
        from .kernels_accumulate_api import run_integer
        return run_integer(a, b, c, counters, self)


@dataclass(frozen=True, kw_only=True)
class BinaryAccumulation:
    """XNOR-popcount over bit-packed +-1 operands: ``dot = 2*popcount(xnor) - n``, exact."""

    def run(self, a, b, c=None, counters=None):
        from .kernels_accumulate_api import run_binary
        return run_binary(a, b, c, counters)


@dataclass(frozen=True, kw_only=True)
class Scaling:
    """Scales applied inside the accumulation, per K-block of ``block_k`` (``None``: one block).

    For each K-block the accumulation runs from zero, the partial is multiplied by
    ``round(s_A * s_B)`` and rounded, then added into ``accumulator`` and rounded (all in
    ``accumulator``'s format and rounding). Scales are given to :func:`gemm` as ``scale_a``
    (shape ``[M or 1, blocks]``) and ``scale_b`` (``[blocks, N or 1]``).
    """

    block_k: int | None = None
    accumulator: Sequential = field(default_factory=lambda: Sequential(format="binary32"))

    def __post_init__(self) -> None:
        if self.block_k is not None:
            _positive_int(self.block_k, "Scaling.block_k")
        if not isinstance(self.accumulator, Sequential):
            raise DatapathError(f"Scaling.accumulator={self.accumulator!r}: must be a Sequential")


def _operand(fmt: Any, argument: str) -> OperandFormat:
    rec = get_format(fmt, argument)
    if isinstance(rec, FloatFormat) and rec.radix != 2:
        raise DatapathError(f"{argument}={rec.name}: radix-4 operands are not supported")
    if not isinstance(rec, (FloatFormat, IntFormat, BinaryFormat)):
        raise DatapathError(f"{argument}={rec.name}: a block format is an element format plus "
                            "scales; give its element format and a Scaling record")
    return rec


def _significand_range(fmt: OperandFormat) -> tuple[int, int, int]:
    """(significand bits, lowest and highest binary exponent of a value's lsb / msb)."""
    if isinstance(fmt, FloatFormat):
        emin, emax = fmt.binary_exponent_range
        return fmt.mantissa_bits + 1, emin - fmt.mantissa_bits, emax + 1
    if isinstance(fmt, IntFormat):
        return fmt.bits, -fmt.fraction_bits, fmt.bits - fmt.fraction_bits
    return 1, 0, 1


@dataclass(frozen=True, kw_only=True)
class Datapath:
    """One MAC array: ``out = round_out(accumulate(product(a_ik, b_kj)))`` with optional scales.

    ``a``, ``b`` and ``output`` take a record or a catalogue name; ``output=None`` keeps the
    accumulator's format. ``operand_mode`` says whether operands are quantised (RNE) or checked.
    """

    a: OperandFormat
    b: OperandFormat
    accumulation: Any
    product: Product = field(default_factory=Product)
    output: FloatFormat | None = None
    output_rounding: Rounding = NEAREST_EVEN
    operand_mode: OperandMode = OperandMode.QUANTIZE
    scaling: Scaling | None = None
    name: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", _operand(self.a, "Datapath.a"))
        object.__setattr__(self, "b", _operand(self.b, "Datapath.b"))
        if self.output is not None:
            object.__setattr__(self, "output", _float_format(self.output, "Datapath.output"))
        object.__setattr__(self, "output_rounding",
                           _rounding(self.output_rounding, "Datapath.output_rounding"))
        object.__setattr__(self, "operand_mode", OperandMode(self.operand_mode))
        if not isinstance(self.product, Product):
            raise DatapathError(f"Datapath.product={self.product!r}: must be a Product record")
        if self.scaling is not None and not isinstance(self.scaling, Scaling):
            raise DatapathError(f"Datapath.scaling={self.scaling!r}: must be a Scaling record")
        if not callable(getattr(self.accumulation, "run", None)):
            raise DatapathError(f"Datapath.accumulation={self.accumulation!r}: must be an "
                                "accumulation record (Sequential, Chunked, Promoted, Exact, ...)")
        self._check_kinds()

    def _check_kinds(self) -> None:
        acc, a, b = self.accumulation, self.a, self.b
        if isinstance(acc, IntegerAccumulation):
            if not (isinstance(a, IntFormat) and isinstance(b, IntFormat)):
                raise DatapathError(f"IntegerAccumulation needs integer operands, got a={a.name}, "
                                    f"b={b.name}")
            if a.bits + b.bits > acc.bits + 31 or a.bits + b.bits > 62:
                raise DatapathError(f"IntegerAccumulation(bits={acc.bits}): products of {a.name} "
                                    f"x {b.name} do not fit the 63-bit kernel")
        elif isinstance(acc, BinaryAccumulation):
            if not (isinstance(a, BinaryFormat) and isinstance(b, BinaryFormat)):
                raise DatapathError(f"BinaryAccumulation needs binary operands, got a={a.name}, "
                                    f"b={b.name}")
        if isinstance(acc, (IntegerAccumulation, BinaryAccumulation, Exact)) \
                and self.product.format:
            raise DatapathError("Product.format: integer, binary and Kulisch (Exact) products "
                                "are exact; use Product()")
        (sa, la, ha), (sb, lb, hb) = _significand_range(a), _significand_range(b)
        if sa + sb > 53 or la + lb < -1074 or ha + hb > 1023:
            raise DatapathError(f"products of {a.name} x {b.name} are not exact in float64")

    @property
    def accumulator_format(self) -> FloatFormat:
        """The float format the accumulation returns (binary64 for integer and binary sums,
        which hold integers below 2^53 exactly)."""
        if isinstance(self.accumulation, (IntegerAccumulation, BinaryAccumulation)):
            return get_format("binary64")
        fmt = getattr(self.accumulation, "format", None)
        if not isinstance(fmt, FloatFormat):
            fmt = getattr(self.accumulation, "output", None)  # FusedAccumulation
        if not isinstance(fmt, FloatFormat):
            raise DatapathError(f"{self.accumulation!r}: exposes no accumulator format")
        return fmt

    @property
    def output_format(self) -> FloatFormat:
        """The format of gemm's result."""
        return self.output if self.output is not None else self.accumulator_format

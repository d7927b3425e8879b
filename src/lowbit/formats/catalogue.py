"""The catalogue: every named format, declared once as data.

``FORMATS`` is a read-only mapping from name to record. Canonical names follow ml_dtypes where it
has the format (``e4m3fn``: f = finite, n = special NaN encoding; ``fnuz``: finite, NaN at -0, no
-0; ``fnu``: finite, NaN, unsigned); ml_dtypes' long names (``float8_e4m3fn``) are aliases.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Union

from .block_format import BlockFormat
from .enums import ScaleRule, Specials
from .errors import InvalidArgument, UnknownFormatError, close_names
from .float_format import FloatFormat
from .int_format import BinaryFormat, IntFormat

__all__ = ["FORMATS", "Format", "get_format", "ieee_like"]

Format = Union[FloatFormat, IntFormat, BinaryFormat, BlockFormat]


def ieee_like(name: str, exponent_bits: int, mantissa_bits: int, **kw) -> FloatFormat:
    """A format with the IEEE bias ``2^(E-1) - 1`` unless ``bias`` is given.

    Example:
        >>> float(ieee_like("fp16", 5, 10).max)
        65504.0
    """
    kw.setdefault("bias", (1 << (exponent_bits - 1)) - 1)
    return FloatFormat(name=name, exponent_bits=exponent_bits, mantissa_bits=mantissa_bits, **kw)


FN, FNUZ, NONE = Specials.FN, Specials.FNUZ, Specials.NONE

_E4M3FN = ieee_like("e4m3fn", 4, 3, specials=FN, doc="OCP OFP8 E4M3 (NVIDIA/AMD/Intel FP8)")
_E5M2 = ieee_like("e5m2", 5, 2, doc="OCP OFP8 E5M2, IEEE-like")
_E3M2 = ieee_like("e3m2fn", 3, 2, specials=NONE, doc="OCP MX FP6 E3M2")
_E2M3 = ieee_like("e2m3fn", 2, 3, specials=NONE, doc="OCP MX FP6 E2M3")
_E2M1 = ieee_like("e2m1fn", 2, 1, specials=NONE, doc="OCP MX / NVFP4 FP4 element")
_E8M0 = FloatFormat(name="e8m0fnu", exponent_bits=8, mantissa_bits=0, bias=127, signed=False,
                    specials=FN, zero=False, subnormals=False, doc="OCP MX block scale, 2^(e-127)")
_UE4M3 = ieee_like("ue4m3", 4, 3, specials=FN, signed=False,
                   doc="unsigned E4M3: the NVFP4 block scale (positive half of e4m3fn)")
_INT8 = IntFormat(name="int8", bits=8, doc="two's-complement 8-bit integer")
_MXINT8_ELEMENT = IntFormat(name="mxint8_element", bits=8, fraction_bits=6, symmetric=True,
                            doc="OCP MXINT8 element: int8/64, -128 unused")

_RECORDS: tuple[Format, ...] = (
    ieee_like("binary64", 11, 52, doc="IEEE 754 double"),
    ieee_like("binary32", 8, 23, doc="IEEE 754 single"),
    ieee_like("tf32", 8, 10, doc="NVIDIA TensorFloat-32 (19 significant bits held in 32)"),
    ieee_like("bf16", 8, 7, doc="bfloat16"),
    ieee_like("fp16", 5, 10, doc="IEEE 754 binary16"),
    _E4M3FN,
    _E5M2,
    FloatFormat(name="e4m3fnuz", exponent_bits=4, mantissa_bits=3, bias=8, specials=FNUZ,
                doc="Graphcore/AMD FP8 E4M3, NaN at 0x80"),
    FloatFormat(name="e5m2fnuz", exponent_bits=5, mantissa_bits=2, bias=16, specials=FNUZ,
                doc="Graphcore/AMD FP8 E5M2, NaN at 0x80"),
    FloatFormat(name="e4m3b11fnuz", exponent_bits=4, mantissa_bits=3, bias=11, specials=FNUZ,
                doc="E4M3 with bias 11 (XLA, after HFP8), NaN at 0x80"),
    ieee_like("e3m4", 3, 4, doc="IEEE-like FP8 E3M4"),
    ieee_like("1-4-3", 4, 3, doc="IBM HFP8 forward format [1,4,3]; bias 7 and IEEE specials are "
                                 "the documented default (the paper's bias is unpublished)"),
    ieee_like("1-5-2", 5, 2, doc="IBM HFP8 backward format [1,5,2], bias 15"),
    ieee_like("1-6-9", 6, 9, doc="Wang et al. 2018 FP16 accumulator (1,6,9), bias 31 (assumed)"),
    ieee_like("e5m6", 5, 6, doc="DeepSeek-V3 E5M6 activation storage (IEEE-like, bias 15 assumed)"),
    _E3M2,
    _E2M3,
    _E2M1,
    FloatFormat(name="fp4_r4", exponent_bits=3, mantissa_bits=0, bias=7, radix=4, specials=NONE,
                doc="IBM radix-4 FP4 [1,3,0] (Sun et al. 2020): +-4^k for k=-6..0 and 0; "
                    "two-phase rounding's even grid"),
    FloatFormat(name="fp4_r4_odd", exponent_bits=3, mantissa_bits=0, bias=7, radix=4,
                exponent_shift=1, specials=NONE,
                doc="radix-4 FP4, two-phase rounding's odd grid: +-2*4^k for k=-6..0 and 0"),
    _E8M0,
    _UE4M3,
    _INT8,
    IntFormat(name="int4", bits=4, doc="two's-complement 4-bit integer"),
    IntFormat(name="uint4", bits=4, signed=False, doc="unsigned 4-bit integer"),
    IntFormat(name="int2", bits=2, doc="two's-complement 2-bit integer"),
    BinaryFormat(name="binary", doc="+-1 with sign(0) = +1 (binarised networks)"),
    BlockFormat(name="mxfp8_e4m3", element=_E4M3FN, block_size=32, scale=_E8M0,
                doc="OCP MXFP8 with E4M3 elements"),
    BlockFormat(name="mxfp8_e5m2", element=_E5M2, block_size=32, scale=_E8M0,
                doc="OCP MXFP8 with E5M2 elements"),
    BlockFormat(name="mxfp6_e3m2", element=_E3M2, block_size=32, scale=_E8M0, doc="OCP MXFP6 E3M2"),
    BlockFormat(name="mxfp6_e2m3", element=_E2M3, block_size=32, scale=_E8M0, doc="OCP MXFP6 E2M3"),
    BlockFormat(name="mxfp4", element=_E2M1, block_size=32, scale=_E8M0, doc="OCP MXFP4"),
    BlockFormat(name="mxint8", element=_MXINT8_ELEMENT, block_size=32, scale=_E8M0,
                doc="OCP MXINT8"),
    BlockFormat(name="mxfp8_e4m3_rceil", element=_E4M3FN, block_size=32, scale=_E8M0,
                rule=ScaleRule.CEIL, doc="MXFP8 with Transformer Engine's round-up scale"),
    BlockFormat(name="nvfp4", element=_E2M1, block_size=16, scale=_UE4M3, rule=ScaleRule.NVFP4,
                tensor_scale=True, doc="NVIDIA NVFP4: E2M1, 16-blocks, E4M3 scale, FP32 tensor scale"),
)

_ALIASES = {
    "float64": "binary64", "fp64": "binary64", "float32": "binary32", "fp32": "binary32",
    "bfloat16": "bf16", "float16": "fp16", "binary16": "fp16", "half": "fp16",
    "float8_e4m3fn": "e4m3fn", "float8_e5m2": "e5m2", "float8_e4m3fnuz": "e4m3fnuz",
    "float8_e5m2fnuz": "e5m2fnuz", "float8_e4m3b11fnuz": "e4m3b11fnuz", "float8_e3m4": "e3m4",
    "float6_e3m2fn": "e3m2fn", "float6_e2m3fn": "e2m3fn", "float4_e2m1fn": "e2m1fn",
    "float8_e8m0fnu": "e8m0fnu", "hfp8_143": "1-4-3", "hfp8_152": "1-5-2",
}


class _Catalogue(Mapping):
    """Read-only name -> record mapping; an unknown name raises with the closest names."""

    def __init__(self, records: tuple[Format, ...], aliases: dict[str, str]) -> None:
        table: dict[str, Format] = {}
        for rec in records:
            if rec.name in table:
                raise ValueError(f"duplicate format name {rec.name!r} in the catalogue")
            table[rec.name] = rec
        for alias, target in aliases.items():
            if alias in table:
                raise ValueError(f"alias {alias!r} shadows a format name")
            table[alias] = table[target]
        self._table = table
        self._canonical = tuple(rec.name for rec in records)

    def __getitem__(self, name: str) -> Format:
        if not isinstance(name, str):
            raise InvalidArgument(f"format name must be a str, got {type(name).__name__}")
        try:
            return self._table[name]
        except KeyError:
            pass
        close = close_names(name, self._table)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownFormatError(f"unknown format {name!r}{hint} (lowbit.FORMATS.names() lists all)")

    def __iter__(self) -> Iterator[str]:
        return iter(self._canonical)

    def __len__(self) -> int:
        return len(self._canonical)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def names(self) -> tuple[str, ...]:
        """Canonical names in catalogue order (aliases excluded)."""
        return self._canonical

    def aliases(self) -> dict[str, str]:
        return dict(_ALIASES)


FORMATS = _Catalogue(_RECORDS, _ALIASES)


def get_format(fmt: Format | str, argument: str = "fmt") -> Format:
    """Resolve a record or a catalogue name to a record; anything else raises ``InvalidArgument``."""
    if isinstance(fmt, str):
        return FORMATS[fmt]
    if isinstance(fmt, (FloatFormat, IntFormat, BinaryFormat, BlockFormat)):
        return fmt
    raise InvalidArgument(f"{argument}={fmt!r}: expected a format record (FloatFormat, IntFormat, "
                          "BinaryFormat, BlockFormat) or a name from lowbit.FORMATS")

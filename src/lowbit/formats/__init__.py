"""Number systems: records, the catalogue and an exact scalar reference. Pure Python + numpy."""

from .block_format import BlockFormat
from .catalogue import FORMATS, Format, get_format, ieee_like
from .enums import Overflow, Rounding, ScaleRule, Specials
from .errors import InvalidArgument, InvalidFormatError, UnknownFormatError
from .float_format import FloatFormat
from .int_format import BinaryFormat, IntFormat, IntOverflow

__all__ = [
    "FORMATS", "BinaryFormat", "BlockFormat", "FloatFormat", "Format", "IntFormat", "IntOverflow",
    "InvalidArgument", "InvalidFormatError", "Overflow", "Rounding", "ScaleRule", "Specials",
    "UnknownFormatError", "get_format", "ieee_like",
]

from .reference import decode_exact, encode_exact, neighbours, round_exact  # noqa: E402

__all__ += ["decode_exact", "encode_exact", "neighbours", "round_exact"]

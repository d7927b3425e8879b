"""Format records: derived facts against ml_dtypes and the spec tables; invalid records; catalogue."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import ml_dtypes as md
import numpy as np
import pytest

import lowbit
from lowbit.testing.oracles import mismatches
from lowbit import (FORMATS, BinaryFormat, BlockFormat, FloatFormat, IntFormat, InvalidFormatError,
                    Overflow, Specials, UnknownFormatError)

ML_FLOATS = {
    "e4m3fn": md.float8_e4m3fn, "e5m2": md.float8_e5m2, "e4m3fnuz": md.float8_e4m3fnuz,
    "e5m2fnuz": md.float8_e5m2fnuz, "e4m3b11fnuz": md.float8_e4m3b11fnuz, "e3m4": md.float8_e3m4,
    "e3m2fn": md.float6_e3m2fn, "e2m3fn": md.float6_e2m3fn, "e2m1fn": md.float4_e2m1fn,
    "e8m0fnu": md.float8_e8m0fnu, "bf16": md.bfloat16, "fp16": np.float16, "binary32": np.float32,
    "binary64": np.float64,
}
ML_INTS = {"int8": np.int8, "int4": md.int4, "uint4": md.uint4, "int2": md.int2}
SMALL = [n for n in FORMATS if not isinstance(FORMATS[n], BlockFormat) and FORMATS[n].bits <= 16]


@pytest.mark.parametrize("name", sorted(ML_FLOATS))
def test_float_facts_match_ml_dtypes_finfo(name):
    fmt, fi = FORMATS[name], md.finfo(ML_FLOATS[name])
    assert fmt.max == Fraction(float(fi.max))
    assert fmt.min_normal == Fraction(float(fi.smallest_normal))
    assert fmt.min_positive == Fraction(float(fi.smallest_subnormal))
    assert fmt.epsilon == Fraction(float(fi.eps))
    assert (fmt.mantissa_bits, fmt.bits) == (fi.nmant, fi.bits)
    if fmt.min_subnormal is not None:
        assert fmt.min_subnormal == Fraction(float(fi.smallest_subnormal))


@pytest.mark.parametrize("name", sorted(ML_INTS))
def test_int_facts_match_ml_dtypes_iinfo(name):
    fmt, ii = FORMATS[name], md.iinfo(ML_INTS[name])
    assert (fmt.qmin, fmt.qmax, fmt.bits) == (ii.min, ii.max, ii.bits)
    assert fmt.max == ii.max and fmt.min == ii.min and fmt.code_count == 2**ii.bits


# (max, min normal, min subnormal or None, code of 1.0, NaN codes, inf codes, count of values())
SPEC = {  # spec sections 1.2-1.4 (OCP OFP8, FNUZ, MX element/scale formats)
    "e4m3fn": (448, 2**-6, 2**-9, 0x38, 2, 0, 253),
    "e5m2": (57344, 2**-14, 2**-16, 0x3C, 6, 2, 247),
    "e4m3fnuz": (240, 2**-7, 2**-10, 0x40, 1, 0, 255),
    "e5m2fnuz": (57344, 2**-15, 2**-17, 0x40, 1, 0, 255),
    "e4m3b11fnuz": (30, 2**-10, 2**-13, 0x58, 1, 0, 255),
    "e3m4": (15.5, 0.25, 2**-6, 0x30, 30, 2, 223),
    "e3m2fn": (28, 0.25, 0.0625, 0x0C, 0, 0, 63),
    "e2m3fn": (7.5, 1, 0.125, 0x08, 0, 0, 63),
    "e2m1fn": (6, 1, 0.5, 0x2, 0, 0, 15),
    "e8m0fnu": (2.0**127, 2.0**-127, None, 0x7F, 1, 0, 255),
    "ue4m3": (448, 2**-6, 2**-9, 0x38, 1, 0, 127),
    "fp16": (65504, 2**-14, 2**-24, 0x3C00, 2046, 2, 63487),
    "bf16": (float(md.finfo(md.bfloat16).max), 2**-126, 2**-133, 0x3F80, 254, 2, 65279),
    "fp4_r4": (1, 4.0**-6, None, None, 0, 0, 15),
    "fp4_r4_odd": (2, 2 * 4.0**-6, None, None, 0, 0, 15),
}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_spec_table(name):
    fmt = FORMATS[name]
    top, normal, sub, one, nans, infs, count = SPEC[name]
    assert (fmt.max, fmt.min_normal, fmt.min_subnormal) == (top, normal, sub)
    table = fmt.decode_table()
    assert (int(np.isnan(table).sum()), int(np.isinf(table).sum())) == (nans, infs)
    assert fmt.values().size == count and fmt.code_count == 2**fmt.bits
    if one is not None:
        assert fmt.decode_exact(one) == 1


def test_small_tables_from_the_spec():
    assert FORMATS["e2m1fn"].values().tolist()[7:] == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    assert FORMATS["e3m2fn"].values().tolist()[31:] == [
        0, .0625, .125, .1875, .25, .3125, .375, .4375, .5, .625, .75, .875, 1, 1.25, 1.5, 1.75,
        2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28]
    assert FORMATS["e2m3fn"].values().tolist()[31:] == [i / 8 for i in range(8)] + [
        2 ** (e - 1) * (1 + f / 8) for e in range(1, 4) for f in range(8)]
    assert FORMATS["fp4_r4"].values().tolist() == sorted([0.0] + [s * 4.0**k for s in (-1, 1)
                                                                  for k in range(-6, 1)])
    assert FORMATS["fp4_r4_odd"].values().tolist() == sorted(
        [0.0] + [s * 2 * 4.0**k for s in (-1, 1) for k in range(-6, 1)])
    assert FORMATS["e8m0fnu"].values().tolist() == [2.0**k for k in range(-127, 128)]
    assert FORMATS["int2"].values().tolist() == [-2, -1, 0, 1]
    assert FORMATS["uint4"].values().tolist() == list(range(16))
    assert FORMATS["binary"].values().tolist() == [-1, 1]
    e4m3 = FORMATS["e4m3fn"]
    assert [e4m3.decode_exact(c) for c in (0x07, 0x77, 0x78)] == [Fraction(7, 512), 240, 256]
    assert math.isnan(e4m3.decode_exact(0x7F)) and math.isnan(e4m3.decode_exact(0xFF))
    assert e4m3.decode_exact(0x80) == 0 and math.copysign(1, e4m3.decode_exact(0x80)) < 0
    assert FORMATS["e5m2"].decode_exact(0xFC) == -math.inf


@pytest.mark.parametrize("name", SMALL)
def test_derived_facts_agree_with_the_value_table(name):
    """max, min normal/subnormal, epsilon and values() restated from the code table."""
    fmt = FORMATS[name]
    table = fmt.decode_table()
    finite = table[np.isfinite(table)]
    vals = fmt.values()
    np.testing.assert_array_equal(vals, np.unique(finite))
    assert vals.size == finite.size - int(np.sum((finite == 0) & np.signbit(finite)))
    assert float(fmt.max) == vals.max() and float(fmt.min_positive) == vals[vals > 0].min()
    if isinstance(fmt, FloatFormat) and fmt.mantissa_bits and 1.0 in vals:
        assert float(fmt.epsilon) == vals[vals > 1].min() - 1
    assert fmt.code_count == 2**fmt.bits == table.size


@pytest.mark.parametrize("fields, named", [
    (dict(exponent_bits=0), "exponent_bits"), (dict(exponent_bits=12), "exponent_bits"),
    (dict(exponent_bits=4.0), "exponent_bits"), (dict(exponent_bits=True), "exponent_bits"),
    (dict(mantissa_bits=53), "mantissa_bits"), (dict(mantissa_bits=-1), "mantissa_bits"),
    (dict(radix=3), "radix"), (dict(radix=4, exponent_shift=2), "exponent_shift"),
    (dict(radix=2, exponent_shift=1), "exponent_shift"), (dict(bias=1.5), "bias"),
    (dict(mantissa_bits=0), "mantissa_bits"),  # IEEE specials need a mantissa bit for NaN
    (dict(specials=Specials.FNUZ, signed=False), "signed"),
    (dict(specials=Specials.FN, overflow=Overflow.INFINITY), "overflow"),
    (dict(specials=Specials.FN, overflow=Overflow.SATURATE_KEEP_INF), "overflow"),
    (dict(specials=Specials.NONE, overflow=Overflow.NAN), "overflow"),
    (dict(zero=False), "subnormals"),
    (dict(radix=4, exponent_bits=8, mantissa_bits=8), "bits"),
])
def test_invalid_float_records_name_the_field(fields, named):
    base = dict(name="bad", exponent_bits=4, mantissa_bits=3, bias=7)
    with pytest.raises(InvalidFormatError, match=named):
        FloatFormat(**{**base, **fields})


@pytest.mark.parametrize("fields, named", [
    (dict(bits=0), "bits"), (dict(bits=33), "bits"), (dict(bits=8.0), "bits"),
    (dict(symmetric=True, signed=False), "symmetric"), (dict(fraction_bits=65), "fraction_bits"),
    (dict(symmetric=True, overflow=lowbit.IntOverflow.WRAP), "symmetric"),
])
def test_invalid_int_records_name_the_field(fields, named):
    with pytest.raises(InvalidFormatError, match=named):
        IntFormat(**{"name": "bad", "bits": 8, **fields})


def test_invalid_block_records():
    e2m1, e8m0 = FORMATS["e2m1fn"], FORMATS["e8m0fnu"]
    with pytest.raises(InvalidFormatError, match="block_size"):
        BlockFormat(name="b", element=e2m1, block_size=0, scale=e8m0)
    with pytest.raises(InvalidFormatError, match="scale"):
        BlockFormat(name="b", element=e2m1, block_size=32, scale=FORMATS["int8"])
    with pytest.raises(InvalidFormatError, match="power-of-two"):
        BlockFormat(name="b", element=e2m1, block_size=32, scale=FORMATS["e4m3fn"])


def test_records_are_frozen_and_hashable():
    fmt = FORMATS["e4m3fn"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fmt.bias = 8  # type: ignore[misc]
    assert len({FORMATS[n] for n in FORMATS}) == len(FORMATS)
    assert dataclasses.replace(fmt, doc="other") == fmt  # doc is not part of identity


def test_unknown_name_lists_close_names():
    with pytest.raises(UnknownFormatError, match="e4m3fn") as err:
        FORMATS["e4m3"]
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    with pytest.raises(UnknownFormatError, match="did you mean"):
        lowbit.quantize(np.zeros(2), "fp8_e4m3")
    with pytest.raises(lowbit.InvalidArgument, match="str"):
        FORMATS[3]


def test_catalogue_is_read_only():
    with pytest.raises(TypeError):
        FORMATS["mine"] = FORMATS["fp16"]  # type: ignore[index]
    with pytest.raises((TypeError, AttributeError)):
        del FORMATS["fp16"]  # type: ignore[attr-defined]
    assert not hasattr(FORMATS, "update") and not hasattr(FORMATS, "pop")


def test_aliases_resolve_to_the_same_record():
    aliases = FORMATS.aliases()
    assert aliases, "the catalogue declares ml_dtypes' long names as aliases"
    for alias, target in aliases.items():
        assert FORMATS[alias] is FORMATS[target] and alias in FORMATS
        assert alias not in FORMATS.names()
    assert FORMATS["float8_e4m3fn"] is FORMATS["e4m3fn"] and FORMATS["half"] is FORMATS["fp16"]
    assert list(FORMATS) == list(FORMATS.names()) and len(FORMATS) == len(FORMATS.names())


def test_duplicate_names_are_rejected():
    catalogue = type(FORMATS)
    fp16 = FORMATS["fp16"]
    with pytest.raises(ValueError, match="duplicate"):
        catalogue((fp16, dataclasses.replace(fp16, bias=14)), {})
    with pytest.raises(ValueError, match="shadows"):
        catalogue((fp16, FORMATS["bf16"]), {"bf16": "fp16"})


def test_catalogue_kinds():
    kinds = {type(FORMATS[n]) for n in FORMATS}
    assert kinds == {FloatFormat, IntFormat, BinaryFormat, BlockFormat}
    assert all(FORMATS[n].name == n for n in FORMATS)


def test_fnuz_without_zero_is_rejected_or_consistent():
    """FNUZ puts NaN at the sign-only code; without a zero that code is -min_normal. Either the
    record is refused, or quantize and encode/decode agree on what -min_normal becomes."""
    try:
        fmt = FloatFormat(name="fnuz_nz", exponent_bits=2, mantissa_bits=0, bias=1,
                          specials=Specials.FNUZ, zero=False, subnormals=False)
    except InvalidFormatError as e:
        assert "zero" in str(e)
        return
    x = np.array([-float(fmt.min_normal), -1e-9])
    assert mismatches(lowbit.decode(lowbit.encode(x, fmt), fmt), lowbit.quantize(x, fmt)).size == 0

"""Bit-exact agreement with ml_dtypes for every format it shares with lowbit.

ml_dtypes casts are round-to-nearest-even with each format's natural overflow convention, which
is the lowbit formats' default policy (e4m3fn/fnuz/e8m0: NaN; e5m2/e3m4/fp16/bf16: inf; FP4/FP6:
saturate). Integer casts are C casts: truncation toward zero, wrapping modulo 2**bits, which is
``Rounding.TOWARD_ZERO`` with ``IntOverflow.WRAP``.
"""

from __future__ import annotations

import dataclasses
import warnings

import ml_dtypes as md
import numpy as np
import pytest

import lowbit
from lowbit import FORMATS, IntOverflow, Rounding
from lowbit.testing.oracles import mismatches

FLOATS = {
    "e4m3fn": md.float8_e4m3fn, "e5m2": md.float8_e5m2, "e4m3fnuz": md.float8_e4m3fnuz,
    "e5m2fnuz": md.float8_e5m2fnuz, "e4m3b11fnuz": md.float8_e4m3b11fnuz, "e3m4": md.float8_e3m4,
    "e3m2fn": md.float6_e3m2fn, "e2m3fn": md.float6_e2m3fn, "e2m1fn": md.float4_e2m1fn,
    "e8m0fnu": md.float8_e8m0fnu, "bf16": md.bfloat16, "fp16": np.float16,
}
INTS = {"int4": md.int4, "int8": np.int8, "uint4": md.uint4, "int2": md.int2}
#: ml_dtypes leaves NaN undefined for the FP4/FP6 formats (they have no NaN code): not compared.
NO_NAN = {"e3m2fn", "e2m3fn", "e2m1fn"}


def ml_cast(x: np.ndarray, dtype) -> np.ndarray:
    """ml_dtypes' cast, with its overflow/invalid warnings silenced (they are the point here)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return x.astype(dtype)


def to_float32_odd(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounded to odd: truncate, and set the last bit when inexact. Rounding
    that to nearest in a format with at most 22 significant bits is the correctly rounded result
    (Boldo & Melquiond 2008), which ml_dtypes' float64 casts (through a float32 rounded to nearest)
    are not: 0.25000000000000006 -> float4_e2m1fn gives 0 there, 0.5 being the nearest."""
    with np.errstate(over="ignore", invalid="ignore"):
        near = x.astype(np.float32)
        over = np.abs(near.astype(np.float64)) > np.abs(x)
        bits = near.view(np.uint32) - over.astype(np.uint32)  # truncated toward zero
        inexact = (bits.view(np.float32).astype(np.float64) != x) & np.isfinite(x)
        return np.where(np.isfinite(x), (bits | inexact.astype(np.uint32)).view(np.float32), near)


def ml_cast_exact(x: np.ndarray, dtype) -> np.ndarray:
    """ml_dtypes' cast, correctly rounded for float64 input (see :func:`to_float32_odd`)."""
    if x.dtype == np.float64 and dtype is not np.float16:
        x = to_float32_odd(x)
    return ml_cast(x, dtype)


def ml_codes(x: np.ndarray, dtype) -> np.ndarray:
    y = ml_cast_exact(x, dtype)
    return y.view(np.uint16 if y.dtype.itemsize == 2 else np.uint8).astype(np.int64)


def every_code_value(name: str) -> np.ndarray:
    fmt = FORMATS[name]
    raw = np.arange(fmt.code_count, dtype=np.uint16 if fmt.bits > 8 else np.uint8)
    return ml_cast(raw.view(FLOATS[name]), np.float64)


def inputs(name: str, dtype) -> np.ndarray:
    """Every value, every midpoint and the floats just beside it, random values over a wide
    exponent range, +-0, NaN, +-inf and just past overflow; as ``dtype``."""
    fmt = FORMATS[name]
    vals = np.unique(every_code_value(name))
    vals = vals[np.isfinite(vals)]
    mids = (vals[:-1] + vals[1:]) / 2
    near = np.concatenate([np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    rng = np.random.default_rng(len(name))
    rand = rng.choice([-1.0, 1.0], 4000) * rng.uniform(1, 2, 4000) * 2.0 ** rng.integers(-140, 130, 4000)
    top = float(fmt.max)
    over = top + (top - vals[-2]) / 2 if fmt.mantissa_bits else top * 1.5
    edges = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, top, over, 2 * top, 1e300, 1e-300,
                      np.nextafter(over, np.inf), np.nextafter(over, -np.inf)])
    x = np.concatenate([vals, mids, near, rand, edges, -edges])
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    if name in NO_NAN:
        x = x[~np.isnan(x)]
    if name == "e8m0fnu":  # ml_dtypes sends every float32 subnormal in (2^-127, 2^-126) up to
        # 2^-126 and reads |x| < 2^-149 as 0 (-> NaN); lowbit rounds to nearest / gives min
        x = x[~((np.abs(x) < 2.0**-126) & (np.abs(x) != 2.0**-127))]
    return x


def _assert_same(actual, expected, x, what):
    bad = mismatches(actual, expected)
    if bad.size:
        i = bad[:6]
        pytest.fail(f"{what}: {bad.size}/{x.size} differ; x={x[i].tolist()} lowbit="
                    f"{np.asarray(actual, np.float64)[i].tolist()} ml_dtypes="
                    f"{np.asarray(expected, np.float64)[i].tolist()}")


@pytest.mark.parametrize("name", sorted(FLOATS))
def test_decode_every_code(name):
    fmt, want = FORMATS[name], every_code_value(name)
    codes = np.arange(fmt.code_count)
    _assert_same(lowbit.decode(codes, fmt), want, codes, "decode")
    _assert_same(fmt.decode_table(), want, codes, "decode_table")
    if fmt.bits <= 16:
        finite = np.unique(want[np.isfinite(want)])
        np.testing.assert_array_equal(fmt.values(), finite)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FLOATS))
def test_encode_and_quantize_match(name, dtype):
    fmt, x = FORMATS[name], inputs(name, dtype)
    _assert_same(lowbit.encode(x, fmt), ml_codes(x, FLOATS[name]), x, "encode")
    want = ml_cast_exact(x, FLOATS[name]).astype(np.float64)
    _assert_same(lowbit.quantize(x, fmt), want, x, "quantize")
    _assert_same(lowbit.quantize(x, name), want, x, "quantize by name")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FLOATS))
def test_saturating_mode_is_clipped_ml_dtypes(name, dtype):
    """``overflow="saturate"``: finite overflow and +-inf give +-max, NaN stays NaN."""
    fmt, x = FORMATS[name], inputs(name, dtype)
    if not fmt.signed:  # negatives and 0 have their own rules in e8m0 (see test_e8m0_saturate)
        x = x[x > 0]
    top = float(fmt.max)
    ml = ml_cast_exact(x, FLOATS[name]).astype(np.float64)
    overflowed = np.isnan(ml) & ~np.isnan(x)
    want = np.clip(np.where(overflowed, np.copysign(top, x), ml), -top, top)
    _assert_same(lowbit.quantize(x, fmt, overflow="saturate"), want, x, "saturate")
    codes = lowbit.encode(x[~np.isnan(x)], fmt, overflow="saturate")
    _assert_same(lowbit.decode(codes, fmt), want[~np.isnan(x)], x[~np.isnan(x)], "encode sat")


def test_e8m0_saturate_negatives_and_zero():
    """No zero: 0 -> NaN under every policy; negatives -> NaN, or min (2^-127) when saturating."""
    x = np.array([0.0, -0.0, -1.0, -1e-30, -np.inf, 1e-45, 2.0 ** 200])
    assert mismatches(lowbit.quantize(x, "e8m0fnu"), [np.nan] * 5 + [2.0**-127, np.nan]).size == 0
    got = lowbit.quantize(x, "e8m0fnu", overflow="saturate")
    assert mismatches(got, [np.nan, np.nan] + [2.0**-127] * 4 + [2.0**127]).size == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(INTS))
def test_int_c_cast(name, dtype):
    """ml_dtypes/numpy integer casts truncate and wrap: TOWARD_ZERO + IntOverflow.WRAP. Inputs
    stay within +-2^31, where the C cast is defined on the platform's int32 path."""
    fmt = dataclasses.replace(FORMATS[name], overflow=IntOverflow.WRAP)
    rng = np.random.default_rng(fmt.bits)
    halves = np.arange(-3 * fmt.code_count, 3 * fmt.code_count) / 2
    x = np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf),
                        rng.uniform(-2.0**31, 2.0**31, 3000), [0.0, -0.0, 2.0**31 - 1]]).astype(dtype)
    x = x[np.abs(x) < 2.0**31]
    want = ml_cast(x, INTS[name]).astype(np.float64)
    _assert_same(lowbit.quantize(x, fmt, Rounding.TOWARD_ZERO), want, x, "quantize")
    want_codes = ml_cast(x, INTS[name]).astype(np.int64) % fmt.code_count
    _assert_same(lowbit.encode(x, fmt, Rounding.TOWARD_ZERO), want_codes, x, "encode")


@pytest.mark.parametrize("name", sorted(INTS))
def test_int_default_is_saturating_rne(name):
    """The catalogue integers saturate and round to nearest even: ``clip(rint(x))``."""
    fmt = FORMATS[name]
    x = np.concatenate([np.arange(-4 * fmt.code_count, 4 * fmt.code_count) / 4, [1e30, -1e30]])
    want = np.clip(np.rint(x), fmt.qmin, fmt.qmax) + 0.0  # integers have no -0
    _assert_same(lowbit.quantize(x, fmt), want, x, "quantize")
    want_codes = ml_cast(want, INTS[name]).astype(np.int64) % fmt.code_count
    _assert_same(lowbit.encode(x, fmt), want_codes, x, "encode")


# Section 9.1 of the spec: input -> code, checked against both lowbit and ml_dtypes.
VECTORS = {
    "e4m3fn": [(1.0, 0x38), (448, 0x7E), (464, 0x7E), (465, 0x7F), (1e6, 0x7F), (np.inf, 0x7F),
               (np.nan, 0x7F), (-0.0, 0x80), (2.0**-9, 0x01), (2.0**-10, 0x00),
               (1.5 * 2**-10, 0x01), (0.1, 0x1D), (1.1875, 0x3A)],
    "e5m2": [(1.0, 0x3C), (57344, 0x7B), (61439, 0x7B), (61440, 0x7C), (np.inf, 0x7C),
             (np.nan, 0x7E), (2.0**-16, 0x01), (2.0**-17, 0x00), (1.5 * 2**-17, 0x01), (0.1, 0x2E)],
    "e4m3fnuz": [(1.0, 0x40), (240, 0x7F), (248, 0x80), (np.inf, 0x80), (-0.0, 0x00)],
    "e5m2fnuz": [(1.0, 0x40), (57344, 0x7F), (61440, 0x80), (-0.0, 0x00)],
    "e4m3b11fnuz": [(1.0, 0x58), (30, 0x7F), (31, 0x80)],
    "e2m1fn": [(0.25, 0x0), (0.75, 0x2), (1.25, 0x2), (1.75, 0x4), (2.5, 0x4), (3.5, 0x6),
               (5.0, 0x6), (7.0, 0x7), (np.inf, 0x7), (-6, 0xF)],
    "e2m3fn": [(7.75, 0x1F), (0.0625, 0x00), (0.1875, 0x02)],
    "e3m2fn": [(30, 0x1F), (0.03125, 0x00), (0.09375, 0x02)],
    "e8m0fnu": [(1.0, 0x7F), (1.5, 0x80), (3.0, 0x81), (2.9, 0x80), (1.4142, 0x7F),
                (2.0**-127, 0x00), (2.0**127, 0xFE), (0.0, 0xFF), (-1.0, 0xFF)],
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_spec_vectors(name):
    x = np.array([v for v, _ in VECTORS[name]], dtype=np.float64)
    want = np.array([c for _, c in VECTORS[name]])
    np.testing.assert_array_equal(lowbit.encode(x, name), want)
    np.testing.assert_array_equal(ml_codes(x, FLOATS[name]), want)

"""Bad input raises a clear error naming the argument and what is allowed, before anything is
written into ``out``; inputs are never modified."""

from __future__ import annotations

import numpy as np
import pytest

import lowbit
from lowbit import FloatFormat, InvalidArgument, InvalidFormatError, Rounding, UnknownFormatError
from lowbit.testing.oracles import mismatches

X = np.array([0.1, -3.0, 500.0, np.nan, 1e-9], dtype=np.float32)
SENTINEL = -12345.0


def _out(dtype=np.float32, shape=X.shape):
    return np.full(shape, SENTINEL, dtype=dtype)


def _untouched(out):
    assert np.all(out == SENTINEL), "an error path wrote into out"


BAD_CALLS = [  # (keyword overrides of quantize(X, "e4m3fn", ...), error type, words in message)
    (dict(fmt=42), InvalidArgument, ["fmt", "FloatFormat"]),
    (dict(fmt="e4m3"), UnknownFormatError, ["e4m3", "e4m3fn"]),
    (dict(x=np.array(["1.0", "2.0"])), InvalidArgument, ["x", "float32"]),
    (dict(x=np.array([1.0, None], dtype=object)), InvalidArgument, ["x", "float32"]),
    (dict(x=np.array([1 + 2j])), InvalidArgument, ["x", "complex", "float32"]),
    (dict(x=[[1.0], [2.0, 3.0]]), InvalidArgument, ["x"]),
    (dict(rounding="nearest"), InvalidArgument, ["rounding", "NEAREST_EVEN"]),
    (dict(rounding=7), InvalidArgument, ["rounding", "NEAREST_EVEN"]),
    (dict(rounding="stochastic", seed=1.5), InvalidArgument, ["seed", "int"]),
    (dict(rounding="stochastic", seed="abc"), InvalidArgument, ["seed", "int"]),
    (dict(rounding="stochastic", seed=2**64), InvalidArgument, ["seed", "64 bits"]),
    (dict(rounding="stochastic", seed=1, random_bits=0), InvalidArgument, ["random_bits", "62"]),
    (dict(rounding="stochastic", seed=1, random_bits=63), InvalidArgument, ["random_bits", "62"]),
    (dict(rounding="stochastic", seed=1, random_bits=8.0), InvalidArgument, ["random_bits", "int"]),
    (dict(rounding="stochastic", seed=1, random_bits=True), InvalidArgument, ["random_bits"]),
    (dict(offset=-1), InvalidArgument, ["offset", "non-negative"]),
    (dict(offset=1.0), InvalidArgument, ["offset"]),
    (dict(overflow="infinity"), InvalidFormatError, ["overflow", "INFINITY", "SATURATE"]),
    (dict(overflow="saturate_keep_inf"), InvalidFormatError, ["overflow", "SATURATE"]),
    (dict(overflow="clamp"), InvalidArgument, ["overflow", "SATURATE"]),
    (dict(fmt="e2m1fn", overflow="nan"), InvalidFormatError, ["overflow", "NAN", "SATURATE"]),
    (dict(fmt="int8", overflow="saturate"), InvalidArgument, ["overflow", "int8"]),
    (dict(fmt="binary", rounding="toward_zero"), InvalidArgument, ["rounding", "binary"]),
]


def _call(func, overrides, **extra):
    kw = dict(overrides)
    x, fmt = kw.pop("x", X), kw.pop("fmt", "e4m3fn")
    return func(x, fmt, **kw, **extra)


@pytest.mark.parametrize("overrides, error, words", BAD_CALLS,
                         ids=[f"{k}={v!r}"[:40] for o, _, _ in BAD_CALLS for k, v in list(o.items())[-1:]])
def test_quantize_rejects_bad_arguments(overrides, error, words):
    out, x_before = _out(), X.copy()
    with pytest.raises(error) as err:
        _call(lowbit.quantize, overrides, out=out)
    message = str(err.value)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    _untouched(out)
    np.testing.assert_array_equal(X, x_before)


@pytest.mark.parametrize("overrides, error, words", BAD_CALLS[:-1])
def test_encode_rejects_bad_arguments(overrides, error, words):
    with pytest.raises(error):
        _call(lowbit.encode, overrides)


@pytest.mark.parametrize("out, words", [
    (np.full((4,), SENTINEL, np.float32), ["out", "shape"]),
    (np.full(X.shape, SENTINEL, np.float64), ["out", "float32"]),
    (np.full((5, 2), SENTINEL, np.float32)[:, 0], ["out", "contiguous"]),
    ([0.0] * 5, ["out", "numpy array"]),
])
def test_bad_out_is_rejected_and_left_alone(out, words):
    before = np.array(out, copy=True)
    with pytest.raises(InvalidArgument) as err:
        lowbit.quantize(X, "e4m3fn", out=out)
    for word in words:
        assert word.lower() in str(err.value).lower()
    np.testing.assert_array_equal(np.asarray(out), before)


def test_good_out_is_filled_and_returned():
    out = _out()
    assert lowbit.quantize(X, "e4m3fn", out=out) is out
    want = [0.1015625, -3.0, np.nan, np.nan, 0.0]  # 500 rounds to 512 > 448: NaN (e4m3fn)
    assert mismatches(out, want).size == 0


def test_impossible_format_record():
    with pytest.raises(InvalidFormatError, match="mantissa_bits"):
        FloatFormat(name="bad", exponent_bits=4, mantissa_bits=0, bias=7)  # IEEE needs M >= 1


def test_encode_nan_without_nan_code_raises():
    with pytest.raises(ValueError, match="e2m1fn") as err:
        lowbit.encode(np.array([1.0, np.nan]), "e2m1fn")
    assert "NaN" in str(err.value)
    assert lowbit.quantize(np.array([np.nan]), "e2m1fn").tolist()[0] != 0  # NaN passes through


def test_decode_rejects_bad_codes():
    with pytest.raises(InvalidArgument, match="codes"):
        lowbit.decode(np.array([1.5]), "e4m3fn")
    with pytest.raises(InvalidArgument, match="255"):
        lowbit.decode(np.array([256]), "e4m3fn")
    with pytest.raises(InvalidArgument, match="15"):
        lowbit.decode(np.array([-1]), "e2m1fn")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("rounding", [Rounding.NEAREST_EVEN, Rounding.STOCHASTIC])
@pytest.mark.parametrize("fmt", ["e4m3fn", "fp4_r4", "int4", "binary", "e8m0fnu", "bf16"])
def test_inputs_are_never_modified(fmt, rounding, dtype):
    x = np.array([0.3, -7.0, 1e4, 0.0, -0.0, np.inf, np.nan], dtype=dtype)
    copy = x.copy()
    lowbit.quantize(x, fmt, rounding, seed=3)
    lowbit.quantize(x[::2], fmt, rounding, seed=3)  # a strided view
    np.testing.assert_array_equal(x.view(np.uint8), copy.view(np.uint8))
    finite = x[np.isfinite(x)] if fmt in ("fp4_r4", "int4", "binary") else x
    before = finite.copy()
    lowbit.encode(finite, fmt, rounding, seed=3)
    np.testing.assert_array_equal(finite.view(np.uint8), before.view(np.uint8))


def test_lists_and_scalars_are_accepted():
    assert lowbit.quantize([1.0, 2.2], "e2m1fn").tolist() == [1.0, 2.0]
    assert lowbit.quantize([1, 5], "e2m1fn").tolist() == [1.0, 4.0]  # ints: converted to float64
    assert float(lowbit.quantize(np.float32(2.6), "e2m1fn")) == 3.0

"""Datapath records: construction, derived facts, and clear errors on contradictory parts or bad
input (nothing computed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lowbit import FORMATS, Rounding
from lowbit.emulator.datapath import (BinaryAccumulation, Chunked, Datapath, DatapathError, Exact,
                                      IntegerAccumulation, OperandMode, Product, Promoted, Scaling,
                                      Sequential)
from lowbit.emulator.gemm import dot, gemm, matmul

FP16_SEQ = Sequential(format="fp16")


def test_records_are_frozen_hashable_and_resolve_names():
    dp = Datapath(a="e4m3fn", b="e5m2", accumulation=FP16_SEQ, output="bf16")
    assert dp.a is FORMATS["e4m3fn"] and dp.output is FORMATS["bf16"]
    assert dp.accumulator_format.name == "fp16" and dp.output_format.name == "bf16"
    with pytest.raises(dataclasses.FrozenInstanceError):
        dp.a = FORMATS["fp16"]  # type: ignore[misc]
    assert hash(dp) == hash(Datapath(a="e4m3fn", b="e5m2", accumulation=FP16_SEQ, output="bf16"))
    assert dataclasses.replace(FP16_SEQ, rounding="stochastic").rounding == Rounding.STOCHASTIC


def test_accumulator_formats_of_each_model():
    outer = Sequential(format="binary32")
    assert Chunked(chunk=4, inner=FP16_SEQ, outer=outer).format.name == "binary32"
    assert Promoted(interval=128, inner=FP16_SEQ, outer=outer).format.name == "binary32"
    assert Datapath(a="int8", b="int8", accumulation=IntegerAccumulation()).output_format.name \
        == "binary64"
    assert Datapath(a="fp16", b="fp16", accumulation=Exact()).output_format.name == "binary32"


@pytest.mark.parametrize("make", [
    lambda: Chunked(chunk=0, inner=FP16_SEQ, outer=FP16_SEQ),
    lambda: Chunked(chunk=-3, inner=FP16_SEQ, outer=FP16_SEQ),
    lambda: Chunked(chunk=4, inner=Exact(), outer=FP16_SEQ),
    lambda: Promoted(interval=0, inner=FP16_SEQ, outer=FP16_SEQ),
    lambda: Promoted(interval=8, inner="fp16", outer=FP16_SEQ),
    lambda: Sequential(format="fp4_r4"),
    lambda: Sequential(format="int8"),
    lambda: Sequential(format="binary64", rounding="toward_zero"),
    lambda: Exact(format="binary64"),
    lambda: Exact(rounding="stochastic"),
    lambda: Product(format="fp16", rounding="stochastic"),
    lambda: IntegerAccumulation(bits=1),
    lambda: IntegerAccumulation(bits=64),
    lambda: Scaling(block_k=0),
    lambda: Datapath(a="fp16", b="fp16", accumulation=IntegerAccumulation()),
    lambda: Datapath(a="int8", b="fp16", accumulation=IntegerAccumulation()),
    lambda: Datapath(a="fp16", b="binary", accumulation=BinaryAccumulation()),
    lambda: Datapath(a="int8", b="int8", accumulation=IntegerAccumulation(),
                     product=Product(format="fp16")),
    lambda: Datapath(a="binary64", b="fp16", accumulation=FP16_SEQ),
    lambda: Datapath(a="mxfp8_e4m3", b="fp16", accumulation=FP16_SEQ),
    lambda: Datapath(a="fp16", b="fp16", accumulation="fp16"),
])
def test_contradictory_parts_raise_value_errors(make):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value)


def test_contradiction_errors_are_datapath_errors():
    with pytest.raises(DatapathError, match="chunk=0"):
        Chunked(chunk=0, inner=FP16_SEQ, outer=FP16_SEQ)
    with pytest.raises(DatapathError, match="integer operands"):
        Datapath(a="fp16", b="fp16", accumulation=IntegerAccumulation())


DP = Datapath(a="fp16", b="fp16", accumulation=FP16_SEQ)
SCALED = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format="binary32"),
                  scaling=Scaling(block_k=2))


@pytest.mark.parametrize("call, match", [
    (lambda: gemm(np.ones((2, 3)), np.ones((4, 2)), DP), "must be"),
    (lambda: gemm(np.ones(3), np.ones((3, 2)), DP), "must be"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), "fp16"), "datapath"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), DP, C=np.ones((3, 2))), "C"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), DP, out=np.ones((2, 3))), "out"),
    (lambda: gemm(np.array([["a"]]), np.ones((1, 2)), DP), "numeric"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), DP, scale_a=2.0), "Scaling"),
    (lambda: gemm(np.ones((2, 4)), np.ones((4, 2)), SCALED, scale_a=np.full((2, 2), np.inf)),
     "finite"),
    (lambda: gemm(np.ones((2, 4)), np.ones((4, 2)), SCALED, scale_b=np.full((2, 2), np.nan)),
     "finite"),
    (lambda: gemm(np.ones((2, 4)), np.ones((4, 2)), SCALED, scale_a=np.ones((2, 3))), "broadcast"),
    (lambda: dot(np.ones(3), np.ones(4), DP), "equal length"),
    (lambda: matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2)), DP), "broadcast"),
])
def test_bad_calls_raise_before_computing(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_check_mode_names_the_first_bad_element():
    dp = dataclasses.replace(DP, operand_mode=OperandMode.CHECK)
    a = np.ones((2, 3))
    a[1, 2] = 1.0 + 2.0**-12
    with pytest.raises(ValueError, match=r"A\[\(1, 2\)\]"):
        gemm(a, np.ones((3, 2)), dp)
    assert gemm(np.ones((2, 3)), np.ones((3, 2)), dp).tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_quantize_mode_rounds_operands_and_never_modifies_inputs():
    a = np.full((1, 2), 1.0 + 2.0**-12)
    b = np.ones((2, 1))
    before = a.copy()
    assert gemm(a, b, DP)[0, 0] == 2.0
    assert np.array_equal(a, before)


def test_integer_and_binary_operand_errors():
    dp = Datapath(a="int8", b="int8", accumulation=IntegerAccumulation())
    with pytest.raises(ValueError, match="NaN"):
        gemm(np.array([[np.nan]]), np.ones((1, 1)), dp)
    with pytest.raises(ValueError, match="integer"):
        gemm(np.ones((1, 1)), np.ones((1, 1)), dp, C=np.array([[0.5]]))
    bdp = Datapath(a="binary", b="binary", accumulation=BinaryAccumulation(),
                   operand_mode=OperandMode.CHECK)
    with pytest.raises(ValueError, match="binary"):
        gemm(np.array([[0.5]]), np.ones((1, 1)), bdp)

"""Binary (XNOR) GEMM on raw operands: binarised while packing exactly as ``quantize`` to the
binary format binarises (sign(0) = sign(-0) = +1), NaN rejected, float32 and float64 alike."""

import numpy as np
import pytest

import lowbit
from lowbit.emulator import BinaryAccumulation, Datapath, OperandMode, gemm

BINARY = Datapath(a="binary", b="binary", accumulation=BinaryAccumulation())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 4), (7, 130, 9), (65, 200, 70)])
def test_raw_operands_equal_quantize_then_integer_matmul(dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(k)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    A[0, :3] = [0.0, -0.0, 1e-30]
    B[:2, 0] = [-0.0, 0.0]
    qa = lowbit.quantize(A, "binary").astype(np.int64)
    qb = lowbit.quantize(B, "binary").astype(np.int64)
    np.testing.assert_array_equal(gemm(A, B, BINARY), (qa @ qb).astype(np.float64))


def test_nan_operand_is_rejected():
    A, B = np.ones((2, 3)), np.ones((3, 2))
    A[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gemm(A, B, BINARY)


def test_check_mode_still_requires_plus_minus_one():
    checked = Datapath(a="binary", b="binary", accumulation=BinaryAccumulation(),
                       operand_mode=OperandMode.CHECK)
    with pytest.raises(ValueError, match="binary"):
        gemm(np.full((2, 3), 0.5), np.ones((3, 2)), checked)
    np.testing.assert_array_equal(gemm(-np.ones((2, 3)), np.ones((3, 2)), checked),
                                  np.full((2, 2), -3.0))

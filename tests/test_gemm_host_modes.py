"""Directed modes and nearest-away of float32-range accumulators in the fast kernels: binary32
(step kind 8), bf16 and tf32 (kind 3 with bounded products).

The register block runs with the host (x86 MXCSR) in the step's mode, so the float32 sum of an
exact product is the step itself (to odd: ``odd_sum_rz`` toward zero; nearest-away:
``away_sum_rz``, toward zero, from the truncated sum and its remainder). These tests hold it to
the generic kernel bit for bit (signs of zero included: IEEE gives -0 for an exact zero
downward, lowbit +0 unless both terms are -0) and to the Fraction replay, with overflow from
an accumulator at float32's largest value.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gemm_oracle import check_all
from test_gemm_sr import fast_equals_generic

from lowbit import Rounding, quantize
from lowbit.emulator.datapath import Chunked, Datapath, Sequential
from lowbit.emulator.gemm import gemm

R = Rounding
MODES = [R.TOWARD_ZERO, R.UP, R.DOWN, R.TO_ODD]
#: binary32 takes nearest-away in the host plan too
HOST_MODES = MODES + [R.NEAREST_AWAY]
F32_MAX = float(np.finfo(np.float32).max)


def operands(seed: int, m: int = 19, k: int = 300, n: int = 21):
    """fp16 operands with zero and -0 columns, an exactly cancelling pair, and C rows at
    +-float32's largest value (so that steps overflow, or step back from it) and -0."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    a[:, :5] = 0.0
    a[0, 5:] = -0.0
    b[:, 0] = -0.0
    a[4, 10], a[4, 11] = 1e4, -1e4
    c = rng.standard_normal((m, n))
    c[1], c[2], c[3] = F32_MAX, -F32_MAX, -0.0
    return a, b, c


@pytest.mark.parametrize("mode", HOST_MODES)
@pytest.mark.parametrize("chunked", [False, True])
def test_equals_generic_kernel(monkeypatch, mode, chunked):
    a, b, c = operands(int(mode))
    acc = Sequential(format="binary32", rounding=mode)
    if chunked:
        acc = Chunked(chunk=16, inner=acc, outer=Sequential(format="binary32"))
    dp = Datapath(a="fp16", b="fp16", accumulation=acc)
    fast = fast_equals_generic(monkeypatch, a, b, dp, C=c)  # (kind 8 on x86 only)
    nearest = gemm(a, b, Datapath(a="fp16", b="fp16", accumulation=Sequential(format="binary32")),
                   C=c)
    assert not np.array_equal(fast, nearest)  # the mode is in force


def test_exact_zero_signs_downward():
    """From C = -0: x + (-x) is +0, (-0) + (-0) is -0 and (-0) + 0 is +0, as in the generic
    kernels, in every mode (IEEE downward would give -0 for all three)."""
    a = np.array([[1.0, -1.0], [-0.0, -0.0], [0.0, -0.0]])
    b = np.array([[1.0], [1.0]])
    for mode in HOST_MODES:
        dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="binary32",
                                                                  rounding=mode))
        got = gemm(a, b, dp, C=np.full((3, 1), -0.0))[:, 0]
        assert list(np.signbit(got)) == [False, True, False], mode


@pytest.mark.parametrize("mode", HOST_MODES)
def test_equals_fraction_replay(mode):
    rng = np.random.default_rng(4)
    a = quantize(rng.standard_normal((3, 50)) * 2.0 ** rng.integers(-10, 10, (3, 50)), "fp16")
    b = quantize(rng.standard_normal((50, 5)), "fp16")
    acc = Sequential(format="binary32", rounding=mode)
    dp = Datapath(a="fp16", b="fp16", accumulation=acc)
    check_all(dp, a, b)  # every element against its Fraction replay


@pytest.mark.parametrize("mode", MODES + [R.NEAREST_AWAY])
@pytest.mark.parametrize(("fmt", "scale"), [("bf16", 2.0**-70), ("tf32", 1.0), ("bf16", 2.0**25)])
def test_float32_range_formats_in_directed_modes(monkeypatch, mode, fmt, scale):
    """bf16 and tf32 accumulators (float32's exponent range) take the integer rounder (kind
    3; on x86 kind 9, its lazy form, which replays a block with kind 3's step where a value
    passed the largest one or was not finite) where products stay below the gap between
    their largest value and 2^128, so that no float32 sum overflows: over bf16's subnormals
    (operands whose products reach 2^-148), near its largest value (C at +-3.3e38: steps
    overflow in some modes), with NaN and infinite C entries, and with fp16 operands."""
    from test_gemm_sr import TINY
    ops = "fp16" if fmt == "tf32" else TINY
    rng = np.random.default_rng(int(mode))
    a, b = rng.standard_normal((19, 300)) * scale, rng.standard_normal((300, 21)) * scale
    c = rng.standard_normal((19, 21)) * scale**2
    c[1], c[2] = 3.3e38, -3.3e38
    c[3, 4], c[5, 6], c[7, 8] = np.nan, np.inf, -np.inf
    dp = Datapath(a=ops, b=ops, accumulation=Sequential(format=fmt, rounding=mode))
    fast_equals_generic(monkeypatch, a, b, dp, fast_expected=True, C=c)  # kind 9, or 3



def test_nearest_away_ties(monkeypatch):
    """Exact ties of binary32 (1 plus half a unit) go away from zero in both signs, a hair under
    a tie goes toward zero; from float32's largest value a product below 2^104 (``fast_run``
    keeps them there, so that no finite sum passes float32's range) never overflows."""
    h = 2.0**-12
    a = np.array([[1.0, h], [-1.0, -h], [1.0, h * (1 - 2.0**-10)], [0.0, h]])
    b = np.array([[1.0], [h]])
    c = np.array([[0.0], [0.0], [0.0], [F32_MAX]])
    dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="binary32",
                                                              rounding=R.NEAREST_AWAY))
    got = fast_equals_generic(monkeypatch, a, b, dp, C=c)[:, 0]
    assert got.tolist() == [1.0 + 2.0**-23, -1.0 - 2.0**-23, 1.0, F32_MAX]

"""Integer accumulation through the float32 kernel (``kernels_accumulate_api._integer_fast``)."""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.emulator import kernels_accumulate_api as api
from lowbit.emulator.datapath import Datapath, IntegerAccumulation
from lowbit.emulator.gemm import gemm
from lowbit.formats import IntOverflow


def _spy(monkeypatch):
    taken = []
    real = api._integer_fast

    def spy(*args):
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr(api, "_integer_fast", spy)
    return taken


@pytest.mark.parametrize("fmt,k,lo,hi", [("int4", 300, -8, 8), ("int8", 1000, -127, 128),
                                         ("int8", 1040, -128, 128)])
def test_fast_integer_equals_int64(fmt, k, lo, hi, monkeypatch):
    taken = _spy(monkeypatch)
    rng = np.random.default_rng(k)
    m, n = 7, 19
    a = rng.integers(lo, hi, (m, k)).astype(np.float64)
    b = rng.integers(lo, hi, (k, n)).astype(np.float64)
    a[0], b[:, 0] = lo, lo  # the largest products the format has, on one row and column
    c = rng.integers(-50, 50, (m, n)).astype(np.float64)
    dp = Datapath(a=fmt, b=fmt, accumulation=IntegerAccumulation())
    got = gemm(a, b, dp, C=c)
    want = a.astype(np.int64) @ b.astype(np.int64) + c.astype(np.int64)
    assert np.array_equal(got, want.astype(np.float64))
    assert np.array_equal(np.signbit(got), want < 0)  # no -0 from the float32 sums
    # int8 at K = 1040: 128^2 * 1040 passes 2^24, and the int64 kernel runs
    bound = np.abs(c).max() + k * np.abs(a).max() * np.abs(b).max()
    assert taken == [bound < 2**24] and taken[0] == (k != 1040)
    slow, _ = gemm(a, b, dp, C=c, counters=True)
    assert np.array_equal(got, slow)


def test_narrow_accumulator_keeps_the_integer_kernel(monkeypatch):
    """A 12-bit accumulator can wrap within float32's integers: the exact kernel runs."""
    taken = _spy(monkeypatch)
    a = np.full((1, 100), 7.0)
    b = np.full((100, 1), 7.0)
    for overflow, want in ((IntOverflow.WRAP, 4900 - 4096), (IntOverflow.SATURATE, 2047)):
        dp = Datapath(a="int4", b="int4", accumulation=IntegerAccumulation(bits=12,
                                                                          overflow=overflow))
        assert gemm(a, b, dp)[0, 0] == want
    assert taken == [False, False]


def test_no_negative_zero(monkeypatch):
    taken = _spy(monkeypatch)
    a = np.array([[-1.0, 0.0]])
    b = np.array([[0.0], [-3.0]])
    got = gemm(a, b, Datapath(a="int4", b="int4", accumulation=IntegerAccumulation()),
               C=np.array([[-0.0]]))
    assert got[0, 0] == 0 and not np.signbit(got[0, 0]) and taken == [True]


def test_integer_peak_checks_and_bounds_in_one_pass():
    """max |x|, or -1 as soon as one element is a fraction, NaN or infinite (any position,
    across the kernel's chunks)."""
    from lowbit.emulator.kernels_int import integer_peak
    rng = np.random.default_rng(9)
    x = rng.integers(-1000, 1000, 50_000).astype(np.float64)
    assert integer_peak(x) == np.max(np.abs(x))
    assert integer_peak(x.reshape(250, 200)) == np.max(np.abs(x))
    assert integer_peak(np.zeros(0)) == 0.0
    assert integer_peak(np.array([-0.0, -7.0])) == 7.0
    for bad in (0.5, np.nan, np.inf, -np.inf, 2.0**60):
        y = x.copy()
        y[int(rng.integers(0, y.size))] = bad
        want = -1.0 if not float(bad).is_integer() else max(abs(bad), np.max(np.abs(x)))
        assert integer_peak(y) == want, bad

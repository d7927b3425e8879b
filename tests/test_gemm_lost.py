"""Round-to-nearest-even steps whose float32 sum can mislead the rounding only by losing a
nonzero accumulator value entirely under a product that is a midpoint (``kernels_gemm_micro``
plan "lost": fp8 products into e5m2). The block keeps the plain float32 sums, flags the lanes
whose sum equals the product while the accumulator was not zero, and replays the block exactly
when any lane flagged (or overflowed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gemm_oracle import check_all
from test_gemm_sr import fast_equals_generic

import lowbit
from lowbit import FloatFormat
from lowbit.emulator.datapath import Datapath, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.emulator.kernels_gemm_fast import X86
from lowbit.emulator.kernels_gemm_micro import LOST, exactness_plan, overflow_plan

E5M2 = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format="e5m2"))


def _steps(monkeypatch) -> list:
    from lowbit.emulator import kernels_gemm_micro
    steps = []
    real = kernels_gemm_micro.micro_kernel
    monkeypatch.setattr(kernels_gemm_micro, "micro_kernel", lambda step_in, *rest: steps.append(
        step_in) or real(step_in, *rest))
    return steps


@pytest.mark.parametrize(("ops", "acc", "step"), [
    ("e4m3fn", "e5m2", (4, LOST)), ("e5m2", "e5m2", (4, LOST)), ("fp16", "e5m2", (4, 1)),
    ("e4m3fn", "e4m3fn", (4, 0)),
    ("e4m3fn", FloatFormat(name="e5m11", exponent_bits=5, mantissa_bits=11, bias=15), (10, 1))])
def test_which_plan(monkeypatch, ops, acc, step):
    """fp8 products (8 and 6 bits) into e5m2 can only lose an accumulator (plan "lost");
    fp16 products (22 bits) can also be cut off in part (TwoSum, speculatively); e4m3fn into
    e4m3fn spans too few binades to lose one (no fix); 11 mantissa bits can be cut off, and
    short products then take kind 10 on x86."""
    steps = _steps(monkeypatch)
    a = np.random.default_rng(1).standard_normal((6, 40))
    gemm(a, a.T, Datapath(a=ops, b=ops, accumulation=Sequential(format=acc)))
    want = step if X86 or step[0] != 10 else (4, 1)
    assert [s[:2] for s in steps] == [want]


def test_plan_names():
    assert exactness_plan(4, LOST) == "lost" and overflow_plan(4, LOST) == "lazy"


def _lost_lanes(rng, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """e4m3fn operands where the first product leaves +-2^-16 (e5m2's smallest subnormal) in
    every accumulator of rows 0-3, and the second product is 30720 = 240 * 128: e5m2's
    midpoint between 28672 and 32768, which the float32 sum ``30720 +- 2^-16`` rounds onto
    (31 bits). The exact sums round to 32768 and 28672; the float32 ones tie to 32768."""
    a = lowbit.quantize(rng.standard_normal((m, k)), "e4m3fn")
    b = lowbit.quantize(rng.standard_normal((k, n)), "e4m3fn")
    a[:4, 0], a[:4, 1] = 2.0**-9, 240.0
    b[0], b[1] = 2.0**-7 * np.where(np.arange(n) % 2, -1.0, 1.0), 128.0
    a[:4, 2:] = 0.0  # (nothing else in those rows)
    return a, b


def test_lost_accumulators_are_replayed(monkeypatch):
    a, b = _lost_lanes(np.random.default_rng(3), 13, 50, 30)
    got = fast_equals_generic(monkeypatch, a, b, E5M2)
    assert (got[:4, 0::2] == 32768.0).all() and (got[:4, 1::2] == 28672.0).all()
    check_all(E5M2, a[:6], b[:, :8])


def test_lost_lanes_and_overflow_in_one_block(monkeypatch):
    """A block whose lanes both lose an accumulator and overflow e5m2 (to infinity): one
    replay settles both; rows without either stay on the fast path's results."""
    a, b = _lost_lanes(np.random.default_rng(4), 9, 40, 26)
    a[4, :3], b[:3, 5] = 448.0, 448.0  # three products of 200704: past e5m2's 57344
    got = fast_equals_generic(monkeypatch, a, b, E5M2)
    assert np.isinf(got[4, 5]) and got[4, 5] > 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.integers(-12, 4), c=st.booleans())
def test_equals_fraction_replay(seed, shift, c):
    """Random e4m3fn operands over e5m2's range (scaled by ``2^shift``: subnormal sums,
    overflow), some accumulators set up to be lost, C or not, against the exact replay."""
    rng = np.random.default_rng(seed)
    a, b = _lost_lanes(rng, 5, 24, 9)
    a[4:] = lowbit.quantize(rng.standard_normal((1, 24)) * 2.0**shift, "e4m3fn")
    cc = lowbit.quantize(rng.standard_normal((5, 9)) * 2.0**(shift - 8), "e5m2") if c else None
    check_all(E5M2, a, b, cc)


@st.composite
def _wide_formats(draw) -> FloatFormat:
    """Signed formats with subnormals, 1 or 2 mantissa bits and a range wide enough to lose an
    accumulator under e4m3fn products (the "lost" plan), IEEE or with no specials."""
    from lowbit import Overflow, Specials
    e, m = draw(st.integers(5, 7)), draw(st.integers(1, 2))
    specials = draw(st.sampled_from([Specials.IEEE, Specials.NONE]))
    top = (1 << e) - (2 if specials == Specials.IEEE else 1)
    bias = draw(st.integers(max(top - 60, (top + 1) // 2 - 4), min(top - 9, 70)))
    fmt = FloatFormat(name=f"e{e}m{m}b{bias}", exponent_bits=e, mantissa_bits=m, bias=bias,
                      specials=specials)
    if specials == Specials.IEEE:
        fmt = dataclasses.replace(fmt, overflow=draw(st.sampled_from(
            [Overflow.INFINITY, Overflow.SATURATE])))
    return fmt


@settings(max_examples=20, deadline=None)
@given(fmt=_wide_formats(), seed=st.integers(0, 2**32 - 1))
def test_custom_formats_with_lost_lanes(fmt, seed):
    """Any such format: C holds the format's smallest subnormal (of both signs) and the first
    product is one of its midpoints, 1 + 2^-(m+1) times a power of two that e4m3fn holds, so
    the float32 sum loses C; the rest of K is random. Every element against its Fraction
    replay."""
    from lowbit.emulator.kernels_gemm_api import _misleading
    ops = (lowbit.FORMATS["e4m3fn"],) * 2
    assert _misleading(ops, fmt) == (False, True)  # the plan is "lost"
    rng = np.random.default_rng(seed)
    emin, emax = fmt.binary_exponent_range
    e = int(min(8, emax - 1))
    a = lowbit.quantize(rng.standard_normal((4, 12)) * 2.0 ** (e - 3), "e4m3fn")
    b = lowbit.quantize(rng.standard_normal((12, 5)), "e4m3fn")
    a[:2, 0], b[0] = (1 + 2.0 ** -(fmt.mantissa_bits + 1)) * 2.0**e, 1.0
    c = np.zeros((4, 5))
    c[:2] = float(fmt.min_subnormal) * np.where(np.arange(5) % 2, -1.0, 1.0)
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format=fmt))
    check_all(dp, a, b, c)

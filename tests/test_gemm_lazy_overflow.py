"""The lazy overflow check of the fast GEMM kernels (``kernels_gemm_micro.overflow_plan``).

Round-to-nearest-even steps by magic constants (kind 4: fp8 and other small accumulators) skip
their per-step overflow and NaN selects; the block tracks the largest rounded magnitude and runs
again with the full step when it passed the format's largest value. These tests put overflows in
some lanes of a register block and not others, early and late in k, under each overflow policy,
and compare with the generic kernel (itself replayed against Fractions in test_gemm_oracle).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lowbit.emulator.datapath import Chunked, Datapath, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.emulator.kernels_gemm_api import _needs_twosum, accumulator_kind
from lowbit.emulator.kernels_gemm_fast import X86
from lowbit.emulator.kernels_gemm_micro import overflow_plan
from lowbit.formats import FORMATS, Overflow

SAT = dataclasses.replace(FORMATS["e4m3fn"], name="e4m3fn_sat", overflow=Overflow.SATURATE)
# (e3m4: an IEEE format with infinities whose range lets no accumulator value vanish under a
# midpoint product, so it keeps the plain plan; e5m2 does not: ``_needs_twosum``)
ACCUMULATORS = [FORMATS["e4m3fn"], FORMATS["e3m4"], SAT]


def _same(x, y):
    return np.array_equal(x, y, equal_nan=True) and np.array_equal(np.signbit(x), np.signbit(y))


@pytest.mark.parametrize("fmt", ACCUMULATORS, ids=lambda f: f.name)
def test_plan_is_lazy(fmt):
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format=fmt))
    kind = accumulator_kind(dp.accumulation)[0]
    assert kind == 4 and not _needs_twosum((dp.a, dp.b), fmt)
    assert overflow_plan(kind, 0) == "lazy"


def _overflowing(m, k, n, rng, top):
    """Small operands, with a few rows of ``a`` scaled so that some outputs pass ``top`` at a
    random step (and, for saturating formats, come back down after it). e4m3fn operands (at
    most 448) make products up to 448 * 448. The random parts are scaled so that their sums
    stay near ``top / 4`` at most (e3m4's largest value is 15.5)."""
    scale = min(1.0, (top / (4 * np.sqrt(k))) ** 0.5)
    a = rng.standard_normal((m, k)) * scale
    b = rng.standard_normal((k, n)) * scale
    big_a = min(top / 2, 448.0)
    big_b = 4.0 if 4 * big_a > top else 448.0
    for i in rng.choice(m, size=max(1, m // 4), replace=False):
        t = int(rng.integers(0, k))
        a[i, t] = big_a * float(rng.choice([-1.0, 1.0]))
        b[t, :] = np.where(rng.random(n) < 0.3, big_b, b[t, :])
        if t + 1 < k:
            a[i, t + 1] = -a[i, t]
    return a, b


@pytest.mark.parametrize("fmt", ACCUMULATORS, ids=lambda f: f.name)
@pytest.mark.parametrize(("m", "k", "n"), [(13, 40, 37), (5, 7, 16), (26, 200, 48)])
def test_overflow_lanes_match_generic(fmt, m, k, n):
    rng = np.random.default_rng(m * k + n)
    a, b = _overflowing(m, k, n, rng, float(fmt.max))
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format=fmt))
    got = gemm(a, b, dp)
    want, counters = gemm(a, b, dp, counters=True)
    assert _same(got, want)
    hit = counters.overflows + counters.saturations
    assert hit > 0  # the replay really ran
    assert np.isfinite(got).sum() > got.size // 2  # and only some lanes overflowed


@pytest.mark.parametrize("fmt", ACCUMULATORS, ids=lambda f: f.name)
def test_special_initial_values(fmt):
    """NaN and infinite entries of C in one lane of a block, finite ones beside them."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((10, 30)), rng.standard_normal((30, 20))
    c = rng.standard_normal((10, 20))
    c[3, 4], c[7, 11], c[0, 0] = np.nan, np.inf, -np.inf
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format=fmt))
    got = gemm(a, b, dp, C=c)
    assert _same(got, gemm(a, b, dp, C=c, counters=True)[0])


def test_chunked_inner_lazy():
    rng = np.random.default_rng(2)
    a, b = _overflowing(17, 90, 33, rng, 448.0)
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Chunked(
        chunk=16, inner=Sequential(format="e4m3fn"), outer=Sequential(format="binary32")))
    assert _same(gemm(a, b, dp), gemm(a, b, dp, counters=True)[0])


BF16_SAT = dataclasses.replace(FORMATS["bf16"], name="bf16_sat", overflow=Overflow.SATURATE)


@pytest.mark.parametrize("fmt", [FORMATS["bf16"], FORMATS["tf32"], BF16_SAT], ids=lambda f: f.name)
def test_float32_range_accumulators(fmt):
    """bf16 and tf32 accumulators (kind 5, round-to-odd sums on x86). fp16 products cannot
    carry a sum past their largest value, but infinite operands and C entries can: NaN and
    infinities in some lanes of a block (a saturating format turns an infinite sum into its
    largest value), C at the largest value in others."""
    dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format=fmt))
    kind = accumulator_kind(dp.accumulation)[0]
    assert kind == 5 and overflow_plan(kind, 1) == ("lazy" if X86 else "eager")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((11, 40)) * 100, rng.standard_normal((40, 21)) * 100
    top = float(fmt.max)
    c = rng.standard_normal((11, 21))
    c[::3, ::2] = top * np.sign(rng.standard_normal((4, 11)))
    c[5, 3], c[6, 7], c[7, 8] = np.nan, np.inf, -np.inf
    a[2, 5], a[9, 30], b[17, 4] = np.inf, -np.inf, np.inf
    got = gemm(a, b, dp, C=c)
    want, counters = gemm(a, b, dp, C=c, counters=True)
    assert _same(got, want)
    assert counters.overflows + counters.saturations > 0


def test_bf16_without_round_to_odd():
    """e4m3fn products are short enough that bf16 steps need no round-to-odd fix (the plain
    plan, lazy too): infinite and NaN C entries in some lanes, and a saturating variant."""
    for fmt in (FORMATS["bf16"], BF16_SAT):
        dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format=fmt))
        assert not _needs_twosum((dp.a, dp.b), fmt) and overflow_plan(5, 0) == "lazy"
        rng = np.random.default_rng(4)
        a, b = rng.standard_normal((9, 33)) * 50, rng.standard_normal((33, 19)) * 50
        c = rng.standard_normal((9, 19))
        c[1, 2], c[4, 9], c[8, 18] = np.nan, np.inf, -np.inf
        assert _same(gemm(a, b, dp, C=c), gemm(a, b, dp, C=c, counters=True)[0])

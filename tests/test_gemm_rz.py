"""The round-toward-zero exact steps of the fast GEMM kernels (``kernels_gemm_fast.odd_sum_rz``).

On x86 a block whose rounding does not depend on the host's rounding mode runs with MXCSR set to
round toward zero: the float32 sum is then the truncation of the exact sum, and ``RZ(s - acc) !=
p`` tells whether it was inexact. These tests check that predicate and the round-to-odd result it
gives against Fractions, that the plan is taken where it should be, and that the host's rounding
mode is back to nearest-even after a GEMM, in the calling thread and in numba's worker threads.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit, prange, types
from numba.extending import intrinsic

from lowbit.emulator.datapath import Chunked, Datapath, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.emulator.kernels_gemm_fast import X86, odd_sum_rz, restore_mode, rz_mode
from lowbit.emulator.kernels_gemm_micro import exactness_plan
from lowbit.formats import Rounding


@intrinsic
def _odd_rz(typingctx, acc, p):
    """``odd_sum_rz(acc, p)`` with the host rounding toward zero around it (scalar float32)."""
    if (acc, p) != (types.float32, types.float32):
        return None

    def codegen(context, builder, sig, args):
        saved = rz_mode(builder)
        out = odd_sum_rz(builder, *args)
        restore_mode(builder, saved)
        return out

    return types.float32(acc, p), codegen


@njit
def _odd_all(acc, p, out):
    for i in range(acc.size):
        out[i] = _odd_rz(acc[i], p[i])


def _ro24(acc: float, p: float) -> float:
    """acc + p rounded to odd at float32's 24 bits (with its subnormals), by Fractions; the
    zero of an exact cancellation is +0 (as in every rounding mode but downward)."""
    x = Fraction(acc) + Fraction(p)
    if x == 0:
        both_negative = np.signbit(acc) and np.signbit(p) and acc == 0 and p == 0
        return -0.0 if both_negative else 0.0
    mag = abs(x)
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    e -= int(Fraction(2) ** e > mag)
    q = Fraction(2) ** (max(e, -126) - 23)
    n = mag // q
    n = n | 1 if n * q != mag else n
    return float(n * q) * (1.0 if x > 0 else -1.0)


def _check(acc: np.ndarray, p: np.ndarray) -> None:
    acc, p = acc.astype(np.float32), p.astype(np.float32)
    got = np.empty_like(acc)
    _odd_all(acc, p, got)
    for x, y, g in zip(acc, p, got):
        want = np.float32(_ro24(float(x), float(y)))
        assert g.view(np.uint32) == want.view(np.uint32), (float(x), float(y), float(g))


x86_only = pytest.mark.skipif(not X86, reason="MXCSR, and so this fix, exist on x86 hosts only")

_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-2.0**100,
                 max_value=2.0**100)


@x86_only
@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_f32, _f32), min_size=1, max_size=50))
def test_odd_sum_rz_against_fractions(pairs):
    acc, p = (np.array(v, np.float32) for v in zip(*pairs))
    _check(acc, p)


@x86_only
def test_odd_sum_rz_hard_cases():
    """Gaps on both sides of 24 bits, cancellations, signed zeros, subnormal float32 sums."""
    rng = np.random.default_rng(3)
    n = 4000
    acc = (rng.integers(1, 2**11, n) * 2.0 ** rng.integers(-30, 20, n)) * rng.choice([-1, 1], n)
    p = (rng.integers(1, 2**22, n) * 2.0 ** rng.integers(-50, 10, n)) * rng.choice([-1, 1], n)
    _check(acc, p)
    _check(p, acc)  # the product as the larger term
    _check(acc, -acc)
    _check(acc, -acc + np.float32(2.0**-149))
    z = np.array([0.0, -0.0, 0.0, -0.0])
    _check(z, z[::-1])
    _check(z, z)
    tiny = rng.integers(-2**20, 2**20, n) * 2.0 ** -149
    _check(tiny, rng.integers(-2**22, 2**22, n) * 2.0 ** -160)


@x86_only
def test_odd_sum_rz_specials():
    """An infinite or NaN accumulator comes out as it is (no bit set in its pattern)."""
    acc = np.float32([np.inf, -np.inf, np.nan, np.inf])
    p = np.float32([1.5, -2.0**-40, 3.0, -7.0])
    got = np.empty_like(acc)
    _odd_all(acc, p, got)
    assert np.array_equal(got.view(np.uint32), acc.view(np.uint32))


@pytest.mark.parametrize(("a", "acc", "mode", "plan"), [
    ("fp16", "fp16", Rounding.NEAREST_EVEN, "rz"),
    ("fp16", "bf16", Rounding.NEAREST_EVEN, "rz"),
    ("fp16", "fp16", Rounding.TOWARD_ZERO, "rz"),
    ("e4m3fn", "e5m2", Rounding.TO_ODD, "rz"),
    ("fp16", "e5m6", Rounding.NEAREST_EVEN, "speculate"),
    ("e4m3fn", "e4m3fn", Rounding.NEAREST_EVEN, "plain"),
])
def test_plan(a, acc, mode, plan):
    """The step each datapath's fast kernel takes, and which fix it gets."""
    from lowbit.emulator.kernels_gemm_api import _needs_twosum, accumulator_kind
    dp = Datapath(a=a, b=a, accumulation=Sequential(format=acc, rounding=mode))
    kind = accumulator_kind(dp.accumulation)[0]
    twosum = int(kind in (3, 6) or _needs_twosum((dp.a, dp.b), dp.accumulation.format))
    if plan == "rz" and not X86:
        plan = "speculate" if kind in (1, 5) else "twosum"
    assert exactness_plan(kind, twosum) == plan


@pytest.mark.parametrize("mode", list(Rounding))
def test_fp16_inner_steps_through_f16c(mode):
    """Inside a block, fp16 accumulators round to nearest even, toward zero, up and down through
    ``vcvtps2ph``'s rounding immediate on x86 (kind 1); nearest-away, to-odd and stochastic, and
    every mode off x86 or in an outer step, take other paths."""
    from lowbit.emulator.kernels_gemm_api import accumulator_kind
    seq = Sequential(format="fp16", rounding=mode)
    f16c = mode in (Rounding.NEAREST_EVEN, Rounding.TOWARD_ZERO, Rounding.UP, Rounding.DOWN)
    inner = accumulator_kind(seq, inner=True)
    outer = accumulator_kind(seq)
    assert (inner is not None and inner[0] == 1) == (f16c and (X86 or mode == 0))
    assert (outer is not None and outer[0] == 1) == (mode == Rounding.NEAREST_EVEN)


@njit(parallel=True)
def _add_all(x, y, out):
    for i in prange(x.size):
        out[i] = x[i] + y[i]


def test_rounding_mode_restored():
    """After fast GEMMs that ran toward zero, float32 additions in this thread and in numba's
    worker threads round to nearest again (1 + 0.75 ulp would truncate to 1 otherwise)."""
    rng = np.random.default_rng(5)
    for acc in ("fp16", "bf16"):
        chunked = Chunked(chunk=7, inner=Sequential(format=acc), outer=Sequential(format="fp16"))
        for accumulation in (Sequential(format=acc), chunked):
            dp = Datapath(a="fp16", b="fp16", accumulation=accumulation)
            a, b = rng.standard_normal((67, 300)), rng.standard_normal((300, 45))
            got = gemm(a, b, dp)
            assert np.array_equal(got, gemm(a, b, dp, counters=True)[0])
    x = np.full(1 << 16, 1.0, np.float32)
    y = np.full(1 << 16, 0.75 * 2.0**-23, np.float32)
    out = np.empty_like(x)
    _add_all(x, y, out)
    assert np.all(out == np.float32(1.0 + 2.0**-23))
    assert x[0] + y[0] == np.float32(1.0 + 2.0**-23)

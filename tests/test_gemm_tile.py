"""The register-blocked fast GEMM kernels against the generic kernel and exact Fractions.

``gemm(..., counters=True)`` always takes the generic float64 kernel (itself replayed against
Fractions in test_gemm_oracle), so comparing it with a plain call checks the fast kernels bit for
bit on shapes that cross their row and column tiles, in every deterministic mode.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import lowbit
from lowbit.emulator.datapath import Chunked, Datapath, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.emulator.kernels_gemm_api import accumulator_kind
from lowbit.emulator.kernels_gemm_fast import X86
from lowbit.formats import FORMATS, FloatFormat, Rounding

R = Rounding
DETERMINISTIC = [R.NEAREST_EVEN, R.NEAREST_AWAY, R.TOWARD_ZERO, R.UP, R.DOWN, R.TO_ODD]


def _operands(name, shape, rng):
    """Values of ``name`` with many cancellations, ties and tiny/large magnitudes."""
    vals = FORMATS[name].values()
    vals = vals[np.isfinite(vals)]
    big = rng.choice(vals, size=shape)
    small = rng.integers(-3, 4, size=shape).astype(np.float64)
    return np.where(rng.random(shape) < 0.3, small, np.clip(big, -300.0, 300.0))


def _same(x, y):
    return np.array_equal(x, y, equal_nan=True) and np.array_equal(np.signbit(x), np.signbit(y))


CASES = ([("fp16", "fp16", mode) for mode in DETERMINISTIC]
         + [("e4m3fn", "fp16", R.NEAREST_EVEN), ("fp16", "bf16", R.NEAREST_EVEN),
            ("e4m3fn", "e4m3fn", R.NEAREST_EVEN), ("e5m2", "e5m2", R.TOWARD_ZERO),
            ("e4m3fn", "e4m3fn", R.NEAREST_AWAY), ("fp16", "binary32", R.NEAREST_EVEN)])


@pytest.mark.parametrize("ops,acc,mode", CASES)
def test_fast_equals_generic(ops, acc, mode):
    rng = np.random.default_rng(hash((ops, acc, int(mode))) % 2**32)
    m, k, n = 6, 70, 131  # crosses the 4-row and 24-column register blocks
    a, b = _operands(ops, (m, k), rng), _operands(ops, (k, n), rng)
    c = _operands(acc if acc != "binary32" else "bf16", (m, n), rng)
    accums = [Sequential(format=acc, rounding=mode)]
    if mode in (R.TOWARD_ZERO, R.TO_ODD) or ops == "e4m3fn" and acc == "fp16":
        accums.append(Chunked(chunk=9, inner=accums[0], outer=Sequential(format="fp16",
                                                                      rounding=R.UP)))
    for accum in accums:
        dp = Datapath(a=ops, b=ops, accumulation=accum)
        fast = gemm(a, b, dp, C=c)
        slow, _ = gemm(a, b, dp, C=c, counters=True)
        assert _same(fast, slow), (ops, acc, mode, accum)


def test_kind_selection():
    assert accumulator_kind(Sequential(format="fp16"))[0] == 1
    assert accumulator_kind(Sequential(format="bf16"))[0] == 5  # 2^(127+1+16) overflows
    assert accumulator_kind(Sequential(format=FloatFormat(
        name="e7m3_b0", exponent_bits=7, mantissa_bits=3, bias=0)))[0] == 2
    # normals below float32's smallest normal: the integer rounding would cut them too coarsely
    assert accumulator_kind(Sequential(format=FloatFormat(
        name="e8m2_b130", exponent_bits=8, mantissa_bits=2, bias=130))) is None
    assert accumulator_kind(Sequential(format="e4m3fn"))[0] == 4
    assert accumulator_kind(Sequential(format="fp16", rounding=R.TOWARD_ZERO))[0] == 6
    assert accumulator_kind(Sequential(format=FloatFormat(  # 2^(116 + 1 + 20) overflows
        name="e7m3_b10", exponent_bits=7, mantissa_bits=3, bias=10), rounding=R.UP))[0] == 3
    # emax 127: kind 3 (9, its lazy integer form, on x86), with products bounded by fast_run
    # (test_gemm_host_modes)
    assert accumulator_kind(Sequential(format="bf16", rounding=R.UP))[0] == (9 if X86 else 3)
    # outer steps (scalar, outside a block): no host mode, no stochastic stream
    assert accumulator_kind(Sequential(format="binary32", rounding=R.DOWN)) is None
    assert accumulator_kind(Sequential(format="fp16", rounding=R.STOCHASTIC)) is None
    if X86:
        inner = [accumulator_kind(Sequential(format=f, rounding=r), inner=True)[0]
                 for f, r in (("binary32", R.DOWN), ("fp16", R.STOCHASTIC))]
        assert inner == [8, 7]
    # 62 random bits beyond 23 - 22 = 1 bit: ambiguous lanes would not resolve in float64
    wide = FloatFormat(name="e5m22", exponent_bits=5, mantissa_bits=22, bias=15)
    assert accumulator_kind(Sequential(format=wide, rounding=R.STOCHASTIC), inner=True) is None


@pytest.mark.parametrize("mode", DETERMINISTIC)
def test_float32_midpoint_pin(mode):
    """float32 ``acc + p`` lands on an fp16 midpoint although the exact sum does not."""
    x, y = 1808 / 1024, 1160 / 1024
    p = Fraction(x) * Fraction(y)
    for acc0 in (2048.0, -2048.0, 1.0, 3.0, -6.0):
        a = np.array([[1.0, x]])
        b = np.array([[acc0], [y]])
        dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="fp16", rounding=mode))
        got = gemm(a, b, dp)[0, 0]
        want = _round_fp16(Fraction(acc0) + p, mode)
        assert got == want, (acc0, mode, got, want)


def _round_fp16(v: Fraction, mode) -> float:
    """fp16 rounding of a normal-range Fraction (no overflow in these pins)."""
    e = 0
    while abs(v) >= 2 ** (e + 1):
        e += 1
    while abs(v) < 2 ** e:
        e -= 1
    q = Fraction(2) ** (e - 10)
    lo = (v / q).__floor__()
    rem = v / q - lo
    up = {R.NEAREST_EVEN: rem > Fraction(1, 2) or (rem == Fraction(1, 2) and lo % 2 == 1),
          R.NEAREST_AWAY: rem > Fraction(1, 2) or (rem == Fraction(1, 2) and v > 0),
          R.TOWARD_ZERO: rem != 0 and v < 0, R.UP: rem != 0, R.DOWN: False,
          R.TO_ODD: rem != 0 and lo % 2 == 0}[mode]
    return float((lo + int(up)) * q)


@pytest.mark.parametrize("parallel", [False, True])
def test_xnor_popcount_equals_integer_matmul(parallel, monkeypatch):
    from lowbit.emulator import kernels_gemm_xnor
    from lowbit.emulator.datapath import BinaryAccumulation
    if parallel:
        monkeypatch.setattr(kernels_gemm_xnor, "PARALLEL_MIN", 0)
    rng = np.random.default_rng(5)
    for m, k, n in [(5, 130, 67), (1, 64, 1), (3, 1, 2), (9, 200, 129)]:
        a = rng.choice([-1.0, 1.0], size=(m, k))
        b = rng.choice([-1.0, 1.0], size=(k, n))
        c = rng.integers(-5, 5, size=(m, n)).astype(np.float64)
        dp = Datapath(a="binary", b="binary", accumulation=BinaryAccumulation())
        want = a.astype(np.int64) @ b.astype(np.int64) + c.astype(np.int64)
        assert np.array_equal(gemm(a, b, dp, C=c), want.astype(np.float64))
        bad = b.copy()
        bad[k - 1, n - 1] = 0.5
        with pytest.raises(ValueError, match="b: binary accumulation"):
            dp.accumulation.run(a, bad, None)


def _ro24(v: Fraction) -> float:
    """float32 round-to-odd of a Fraction in the normal range (or exact)."""
    if v == 0:
        return 0.0
    mag, e = abs(v), 0
    while mag >= 2 ** (e + 1):
        e += 1
    while mag < 2 ** e:
        e -= 1
    q = Fraction(2) ** (e - 23)
    units = mag / q
    n = units.__floor__()
    if n != units and n % 2 == 0:
        n += 1
    return float(n * q) * (1.0 if v > 0 else -1.0)


def test_add_odd_f32_is_round_to_odd():
    from numba import njit

    from lowbit.emulator.kernels_gemm_fast import add_odd_f32

    @njit
    def run(x, y, out):
        for i in range(x.size):
            out[i] = add_odd_f32(x[i], y[i])

    rng = np.random.default_rng(3)
    n = 4000
    x = (rng.standard_normal(n) * 2.0 ** rng.integers(-40, 40, n)).astype(np.float32)
    y = (rng.standard_normal(n) * 2.0 ** rng.integers(-40, 40, n)).astype(np.float32)
    y[:200] = -x[:200] * np.float32(1 + 2.0 ** -20)  # cancellations
    y[200:300] = 0.0
    x[300:400] = -0.0
    out = np.empty(n, np.float32)
    run(x, y, out)
    for i in range(n):
        want = _ro24(Fraction(float(x[i])) + Fraction(float(y[i])))
        assert out[i] == want, (x[i], y[i], out[i], want)
    assert np.signbit(out[300:400]).tolist() == np.signbit(y[300:400]).tolist()


@pytest.mark.parametrize("name", ["e4m3fn", "e5m2", "fp16", "e3m4", "e2m3fn", "e2m1fn", "e5m6",
                                  "1-6-9", "bf16", "tf32", "e7m3_b0"])
def test_accumulator_rounding_equals_quantize(name):
    """The RNE steps of the GEMM accumulator (kinds 4, 5 and 2) on every float32 class: normals
    of every binade, ties, subnormals of float32 and of the format, overflow, inf and NaN,
    against ``lowbit.quantize`` (itself checked against Fractions and ml_dtypes)."""
    from numba import njit

    from lowbit.emulator.kernels_gemm_micro import make_step
    from lowbit.emulator.kernels_gemm_api import rne_kind
    fmt = FORMATS.get(name) or FloatFormat(name=name, exponent_bits=7, mantissa_bits=3, bias=0)
    kind, g = rne_kind(fmt)
    assert kind == {"bf16": 5, "tf32": 5, "e7m3_b0": 2}.get(name, 4)
    step = make_step(kind, 0, 0)

    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = step(x[i], np.float32(-0.0), g)  # x + (-0) == x, signed zeros included

    rng = np.random.default_rng(9)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    vals = fmt.values().astype(np.float32) if fmt.bits <= 16 else np.float32(
        [fmt.max, fmt.min_normal, fmt.min_positive])
    vals = vals[np.isfinite(vals)]
    mids = ((vals[1:].astype(np.float64) + vals[:-1]) / 2).astype(np.float32)
    x = np.concatenate([bits.view(np.float32), vals, mids, -mids, np.nextafter(mids, 0),
                        np.nextafter(mids, np.float32(np.inf)), np.float32([np.inf, -np.inf])])
    out = np.empty_like(x)
    run(x, out)
    want = lowbit.quantize(x, fmt)
    same = (out == want) | (np.isnan(out) & np.isnan(want))
    assert same.all(), (name, x[~same][:5], out[~same][:5], want[~same][:5])
    assert np.array_equal(np.signbit(out[~np.isnan(out)]), np.signbit(want[~np.isnan(want)]))


@pytest.mark.parametrize("mode", DETERMINISTIC[1:])
@pytest.mark.parametrize("name", ["fp16", "e4m3fn", "e5m2", "e3m4", "e2m1fn", "e5m6", "1-6-9",
                                  "e7m3_b10"])
def test_directed_steps_equal_quantize(name, mode):
    """The non-RNE steps (kind 6 by magic constants where they stay finite, else kind 3) on
    every float32 class, against ``lowbit.quantize``."""
    from numba import njit

    from lowbit.emulator.kernels_gemm_micro import make_step
    fmt = FORMATS.get(name) or FloatFormat(name=name, exponent_bits=7, mantissa_bits=3, bias=10)
    got = accumulator_kind(Sequential(format=fmt, rounding=mode))
    assert got is not None
    kind, g = got
    emax = fmt.binary_exponent_range[1]
    assert kind == (6 if emax + 1 + 23 - fmt.mantissa_bits <= 127 else 3)
    step = make_step(kind, 0, int(mode))

    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = step(x[i], np.float32(-0.0), g)

    rng = np.random.default_rng(int(mode) + len(name))
    bits = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32)
    emin = fmt.binary_exponent_range[0]
    near = rng.uniform(1, 2, 50_000) * 2.0 ** rng.integers(emin - 30, min(emax + 3, 127), 50_000)
    vals = fmt.values() if fmt.bits <= 16 else np.array([float(fmt.max), float(fmt.min_normal)])
    vals = vals[np.isfinite(vals)].astype(np.float32)
    mids = ((vals[1:].astype(np.float64) + vals[:-1]) / 2).astype(np.float32)
    x = np.concatenate([bits.view(np.float32), near.astype(np.float32), vals, mids, -mids,
                        np.nextafter(mids, 0), np.nextafter(mids, np.float32(np.inf)),
                        np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0])])
    out = np.empty_like(x)
    run(x, out)
    want = lowbit.quantize(x, fmt, mode)
    same = (out == want) | (np.isnan(out) & np.isnan(want))
    assert same.all(), (name, mode, x[~same][:5], out[~same][:5], want[~same][:5])
    assert np.array_equal(np.signbit(out[~np.isnan(out)]), np.signbit(want[~np.isnan(want)]))


@pytest.mark.parametrize("acc", ["e4m3fn", "e5m2", "e3m4", "bf16"])
def test_fast_equals_generic_with_special_and_huge_c(acc):
    """Infinite, NaN and huge finite initial accumulators: the lean kind-4 steps (no upper clamp,
    no NaN select) must only be chosen where they cannot matter."""
    rng = np.random.default_rng(17)
    m, k, n = 5, 40, 30
    a, b = _operands("e4m3fn", (m, k), rng), _operands("e4m3fn", (k, n), rng)
    for extra in ([np.inf, -np.inf, np.nan], [1e30, -3e38, 2.0 ** 100], [448.0, -57344.0, 0.0]):
        c = _operands("e4m3fn", (m, n), rng)
        c.flat[rng.choice(c.size, 9, replace=False)] = np.repeat(extra, 3)
        dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format=acc))
        fast = gemm(a, b, dp, C=c)
        slow, _ = gemm(a, b, dp, C=c, counters=True)
        assert _same(fast, slow), (acc, extra)


@pytest.mark.parametrize(("ops", "acc"), [("e5m2", "e5m2"), ("e5m2", "e3m4"), ("e4m3fn", "e4m3fn")])
def test_tiny_accumulator_lost_under_a_midpoint_product(ops, acc):
    """An accumulator value too small to survive the float32 sum with a product that is itself
    a midpoint of the accumulator grid (found by hypothesis: -2^-11 * 1.25 + 30720 into e5m2,
    whose float32 sum is the midpoint 30720, while the exact sum rounds down to 28672). Formats
    whose range allows it (e5m2) take the round-to-odd fix; the others (e4m3fn, e3m4) cannot
    lose a nonzero accumulator value that way, and must stay on the plain plan."""
    from lowbit.emulator.kernels_gemm_api import _needs_twosum
    fmt = FORMATS[acc]
    m = fmt.mantissa_bits
    emin, emax = fmt.binary_exponent_range
    lost_possible = emax - emin + m > 22
    assert _needs_twosum((FORMATS[ops], FORMATS[ops]), fmt) == lost_possible
    tiny = float(fmt.min_subnormal)
    # the largest product of two operand values under the accumulator's largest value that is
    # a midpoint of its grid rounding up (ties to even), so that a hair below it rounds down
    vals = FORMATS[ops].values()
    vals = vals[np.isfinite(vals) & (vals > 0)]
    x, y = np.meshgrid(vals, vals)
    p = (x * y).ravel()
    keep = p <= float(fmt.max)
    x, y, p = x.ravel()[keep], y.ravel()[keep], p[keep]
    grid = lowbit.quantize(p, acc)
    mid = (grid > p) & (lowbit.quantize(p * (1 - 2.0**-30), acc) != grid)
    i = int(np.argmax(np.where(mid, p, 0.0)))
    dp = Datapath(a=ops, b=ops, accumulation=Sequential(format=acc))
    got = gemm(np.array([[x[i]]]), np.array([[y[i]]]), dp, C=np.array([[-tiny]]))[0, 0]
    assert Fraction(p[i]) - Fraction(tiny) == Fraction(p[i] - tiny)  # float64 holds it
    assert got == float(lowbit.quantize(np.array([p[i] - tiny]), acc)[0])

"""Step kind 10 (``kernels_gemm_magic``): nearest-away, toward zero, up, down and to odd into
small accumulators (fp8, fp16 to odd, custom formats) by one magic addition in the host mode
the register block runs in, overflow checked lazily (x86; elsewhere these steps take kind 6),
and nearest-even where short products would make kind 4's speculation replay often.

Single steps run the kernel with K = 1 (one operand holding every float32 class the
accumulator meets, the other 1): once with every value at most the format's largest, so that
no block replays (``round_lazy``), and once beside a column of huge products, so that every
block replays with the full step (``round_full``); both against ``lowbit.quantize``. Whole
GEMMs are held to the generic kernel (signs of zero and NaN included) and to the Fraction
replay, with NaN, infinite and -0 entries of C, subnormal ranges, and the overflow an upward or
downward accumulator drifts into.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gemm_oracle import check_all
from test_gemm_sr import fast_equals_generic, x86_only

import lowbit
from lowbit import FORMATS, FloatFormat, Overflow, Rounding, Specials
from lowbit.emulator.datapath import Chunked, Datapath, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.emulator.kernels_gemm_api import accumulator_kind
from lowbit.emulator.kernels_gemm_fast import X86
from lowbit.emulator.kernels_gemm_micro import (NO_SR, block_shape, exactness_plan,
                                                 micro_kernel, overflow_plan, pad, work_items)
from lowbit.emulator.quantize import _f32_params

R = Rounding
MODES = [R.NEAREST_AWAY, R.TOWARD_ZERO, R.UP, R.DOWN, R.TO_ODD]
#: ... and nearest-even, which kind 10 takes for short products only (``SHORT_PRODUCTS``)
ALL_MODES = [R.NEAREST_EVEN] + MODES
#: An operand format holding 22 significant bits from 2^-90 to 2^57, and powers of two: their
#: products are exact in float32 and stay below 2^125 (``fast_run``'s bound).
WIDE = FloatFormat(name="wide_e7m21", exponent_bits=7, mantissa_bits=21, bias=70)
POW2 = FloatFormat(name="pow2_e6m0", exponent_bits=6, mantissa_bits=0, bias=31,
                   specials=Specials.NONE)
E6M3 = FloatFormat(name="e6m3_b20", exponent_bits=6, mantissa_bits=3, bias=20)


def _name(value) -> str:
    return getattr(value, "name", str(value))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("acc", ["e4m3fn", "e5m2", "fp16", E6M3], ids=_name)
def test_kind_and_plans(mode, acc):
    """Inside a register block on x86 kind 6's formats take kind 10 (fp16 only where
    ``vcvtps2ph`` has no immediate for the mode: nearest-away, to odd); outer steps stay on
    kind 6."""
    seq = Sequential(format=acc, rounding=mode)
    inner, outer = accumulator_kind(seq, inner=True)[0], accumulator_kind(seq)[0]
    f16_direct = acc == "fp16" and mode in (R.TOWARD_ZERO, R.UP, R.DOWN)
    assert outer == 6
    assert inner == (1 if f16_direct and X86 else 10 if X86 else 6)
    if inner == 10:
        assert exactness_plan(10, 1) == "host" and overflow_plan(10, 1) == "lazy"


def _step_inputs(fmt: FloatFormat, seed: int) -> np.ndarray:
    """Every class of value a step rounds: the grid, its midpoints and their float32
    neighbours (both signs), values over the whole range in WIDE's precision, zeros."""
    rng = np.random.default_rng(seed)
    vals = fmt.values()
    vals = vals[np.isfinite(vals) & (vals > 0)]
    mids = (vals[1:] + vals[:-1]) / 2
    top = float(fmt.max)
    grid = np.concatenate([vals, mids, [top * 1.03, top * 1.1, top * 2]])
    near = np.concatenate([grid, np.nextafter(grid.astype(np.float32), np.float32(0)),
                           np.nextafter(grid.astype(np.float32), np.float32(np.inf))])
    emin, emax = fmt.binary_exponent_range
    spread = rng.uniform(1, 2, 20_000) * 2.0 ** rng.integers(emin - 30, emax + 2, 20_000)
    x = np.concatenate([near, spread])
    x = np.concatenate([x, -x, [0.0, -0.0]])
    return np.asarray(lowbit.quantize(x, WIDE), np.float64)


def _kernel_steps(x: np.ndarray, b_row: list, fmt: FloatFormat, mode: Rounding) -> np.ndarray:
    """``round(0 + x[i] * b_row[j])`` by kind 10's kernel (K = 1), whatever ``fast_run``
    would choose for these operands."""
    step = (10, 1, int(mode))
    a32, b32 = pad(x[:, None], np.array([b_row]), *block_shape(step))
    out = np.empty((x.size, len(b_row)))
    fails = np.zeros(work_items(a32, b32, step), np.uint32)
    g = tuple(int(v) for v in _f32_params(fmt, mode))
    micro_kernel(step, (0, 0, 0))(a32, b32, np.zeros((1, 1)), out, 0, g, (0,) * 9, 0, NO_SR,
                                  fails)
    assert not fails.any()
    return out


@x86_only
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("acc", ["e4m3fn", "e5m2", "fp16", E6M3], ids=_name)
def test_single_steps_equal_quantize(mode, acc):
    fmt = FORMATS[acc] if isinstance(acc, str) else acc
    x = _step_inputs(fmt, int(mode))
    big = np.abs(x) > float(fmt.max)
    lazy = _kernel_steps(x[~big], [1.0], fmt, mode)[:, 0]  # no block replays
    full = _kernel_steps(x, [1.0, 2.0**30], fmt, mode)[:, 0]  # every block replays
    for got, xs in ((lazy, x[~big]), (full, x)):
        want = np.asarray(lowbit.quantize(xs, fmt, mode), np.float64)
        nonzero = xs != 0  # (0 + (-0) is +0: the zeros go to the generic kernel below)
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        assert same[nonzero].all(), (xs[nonzero & ~same][:5], got[nonzero & ~same][:5])
        assert np.array_equal(np.signbit(got[nonzero]), np.signbit(want[nonzero]))
    dp = Datapath(a=WIDE, b=POW2, accumulation=Sequential(format=fmt, rounding=mode))
    generic, _ = gemm(x[:, None], np.array([[1.0, 2.0**30]]), dp, counters=True)
    assert np.array_equal(full, generic[:, 0], equal_nan=True)
    real = ~np.isnan(full)  # (gemm returns one NaN pattern; the kernel's own NaN signs vary)
    assert np.array_equal(np.signbit(full[real]), np.signbit(generic[real, 0]))


@pytest.mark.parametrize(("ops", "acc", "scale", "mode"), [
    (ops, acc, scale, mode) for ops, acc, scale in [
        ("fp16", "e4m3fn", 1.0), ("e4m3fn", "e5m2", 2.0**-4), ("e4m3fn", E6M3, 8.0)]
    for mode in ALL_MODES] + [("fp16", "fp16", 1.0, R.TO_ODD), ("fp16", "fp16", 1.0,
                                                                R.NEAREST_AWAY)], ids=_name)
def test_gemm_equals_generic_kernel(monkeypatch, ops, acc, scale, mode):
    """Fast (spied: it ran and kept its result) against the generic kernel, with NaN, infinite,
    huge and -0 entries of C, products reaching the formats' subnormals (``scale``), and K long
    enough that upward and downward accumulators drift into overflow in some blocks."""
    rng = np.random.default_rng(int(mode))
    a = rng.standard_normal((23, 200)) * scale
    b = rng.standard_normal((200, 21)) * scale
    c = rng.standard_normal((23, 21)) * scale**2
    c[3, 4], c[5, 6], c[7, 8], c[9, 10], c[11, 12] = np.nan, np.inf, -np.inf, -0.0, 1e30
    dp = Datapath(a=ops, b=ops, accumulation=Sequential(format=acc, rounding=mode))
    fast = fast_equals_generic(monkeypatch, a, b, dp, fast_expected=True, C=c)
    assert np.isfinite(fast).any()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_chunked_inner_steps(monkeypatch, mode):
    """fp8 chunks (the HFP8 shape) rounded by ``mode``, summed into binary32."""
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((17, 300)), rng.standard_normal((300, 30))
    acc = Chunked(chunk=24, inner=Sequential(format="e5m2", rounding=mode),
                  outer=Sequential(format="binary32"))
    fast = fast_equals_generic(monkeypatch, a, b, Datapath(a="e4m3fn", b="e4m3fn",
                                                           accumulation=acc))
    assert np.isfinite(fast).all()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_gemm_equals_fraction_replay(mode):
    rng = np.random.default_rng(11)
    a = lowbit.quantize(rng.standard_normal((4, 40)) * 2.0 ** rng.integers(-8, 3, (4, 40)),
                        "e4m3fn")
    b = lowbit.quantize(rng.standard_normal((40, 5)), "e4m3fn")
    acc = Sequential(format="e5m2", rounding=mode)
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=acc)
    check_all(dp, a, b)  # every element against its Fraction replay


@st.composite
def _kind10_formats(draw) -> FloatFormat:
    """Custom formats kind 10 takes (signed, subnormals, -0, IEEE/FN/no specials, every
    overflow policy they allow), with ranges inside the WIDE operand's."""
    e = draw(st.integers(2, 7))
    m = draw(st.integers(1, min(10, 14 - e)))  # (at most 16 bits: values() enumerates them)
    specials = draw(st.sampled_from([Specials.IEEE, Specials.FN, Specials.NONE]))
    top = (1 << e) - (2 if specials == Specials.IEEE else 1)  # the largest biased exponent
    bias = draw(st.integers(max(1, top - 50), min(top + 60, 80)))
    policies = {Specials.IEEE: [Overflow.INFINITY, Overflow.SATURATE],
                Specials.FN: [Overflow.NAN, Overflow.SATURATE],
                Specials.NONE: [Overflow.SATURATE]}[specials]
    fmt = FloatFormat(name=f"e{e}m{m}b{bias}_{specials.name.lower()}", exponent_bits=e,
                      mantissa_bits=m, bias=bias, specials=specials)
    return dataclasses.replace(fmt, overflow=draw(st.sampled_from(policies)))


@x86_only
@settings(max_examples=25, deadline=None)
@given(fmt=_kind10_formats(), mode=st.sampled_from(ALL_MODES), seed=st.integers(0, 2**32 - 1))
def test_single_steps_of_custom_formats(fmt, mode, seed):
    """Any format kind 10 takes, in every mode, lazily and replayed, against ``quantize``."""
    if mode != R.NEAREST_EVEN:
        assert accumulator_kind(Sequential(format=fmt, rounding=mode), inner=True)[0] == 10
    x = _step_inputs(fmt, seed % 1000)[::7]
    big = np.abs(x) > float(fmt.max)
    for got, xs in ((_kernel_steps(x[~big], [1.0], fmt, mode)[:, 0], x[~big]),
                    (_kernel_steps(x, [1.0, 2.0**30], fmt, mode)[:, 0], x)):
        want = np.asarray(lowbit.quantize(xs, fmt, mode), np.float64)
        nonzero = xs != 0
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        assert same[nonzero].all(), (xs[nonzero & ~same][:5], got[nonzero & ~same][:5])
        assert np.array_equal(np.signbit(got[nonzero]), np.signbit(want[nonzero]))

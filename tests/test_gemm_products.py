"""Rounded products (``Product(format, rounding)``) in the fast GEMM kernels.

Each exact float32 product is rounded in the register block before the accumulation step
(``kernels_gemm_micro.product_ir``): fp16 through ``vcvtps2ph``, RNE to bf16 and tf32 by integer
rounding, any other format of the float32 quantiser and deterministic mode by the general
integer rounder; a product format that holds every exact product rounds nothing
(``kernels_gemm_api._product_plan``). These tests hold the fast results to the generic kernel
(signs of zero and NaN included), with products that overflow the product format, NaN and
infinite C entries, every plan of the accumulation step, and to the Fraction replay.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gemm_oracle import check_all
from test_gemm_sr import fast_equals_generic

import lowbit
from lowbit import FORMATS, Rounding
from lowbit.emulator.datapath import Chunked, Datapath, Product, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.emulator.kernels_gemm_api import _product_plan, _product_range
from lowbit.emulator.kernels_gemm_fast import X86
from lowbit.emulator.kernels_gemm_micro import NO_PRODUCT, PRODUCT_BITS, PRODUCT_EMIT, PRODUCT_F16

R = Rounding


def _problem(seed: int, scale: float, m: int = 19, k: int = 150, n: int = 21):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)) * scale, rng.standard_normal((k, n)) * scale
    c = rng.standard_normal((m, n))
    c[0, 0], c[1, 1], c[2, 2], c[3, 3] = np.nan, np.inf, -np.inf, -0.0
    a[4, :3] = 0.0
    a[5, :3] = -0.0
    return a, b, c


# (ops, product format, product mode, accumulator, accumulator mode, operand scale): every
# product rounding kind, under accumulation steps of each plan (plain float32, toward zero on
# x86, speculative, host mode, lazy magic, integer), with products overflowing fp16 at 300
CASES = [
    ("fp16", "fp16", R.NEAREST_EVEN, "binary32", R.NEAREST_EVEN, 300.0),
    ("fp16", "fp16", R.NEAREST_EVEN, "fp16", R.NEAREST_EVEN, 1.0),
    ("fp16", "fp16", R.TOWARD_ZERO, "fp16", R.UP, 1.0),
    ("fp16", "fp16", R.DOWN, "e5m2", R.TO_ODD, 8.0),
    ("fp16", "fp16", R.NEAREST_EVEN, "bf16", R.DOWN, 300.0),
    ("fp16", "bf16", R.NEAREST_EVEN, "bf16", R.NEAREST_EVEN, 1.0),
    ("fp16", "tf32", R.TOWARD_ZERO, "fp16", R.TO_ODD, 1.0),
    ("fp16", "tf32", R.TO_ODD, "fp16", R.NEAREST_EVEN, 1.0),
    ("fp16", "e5m2", R.NEAREST_EVEN, "binary32", R.TOWARD_ZERO, 2.0**-6),
    ("e4m3fn", "e3m4", R.NEAREST_AWAY, "e5m2", R.NEAREST_EVEN, 1.0),
    # infinite products into fp16 (vcvtps2ph), into kind 10 nearest-even and toward zero
    ("fp16", "fp16", R.NEAREST_EVEN, "fp16", R.NEAREST_EVEN, 300.0),
    ("fp16", "fp16", R.UP, "e4m3fn", R.NEAREST_EVEN, 300.0),
    ("fp16", "fp16", R.NEAREST_EVEN, "e5m2", R.TOWARD_ZERO, 300.0),
]


@pytest.mark.parametrize(("ops", "pf", "pm", "acc", "am", "scale"), CASES)
def test_fast_equals_generic_kernel(monkeypatch, ops, pf, pm, acc, am, scale):
    a, b, c = _problem(int(pm) * 7 + int(am), scale)
    dp = Datapath(a=ops, b=ops, product=Product(format=pf, rounding=pm),
                  accumulation=Sequential(format=acc, rounding=am))
    fast = fast_equals_generic(monkeypatch, a, b, dp, fast_expected=True, C=c)
    exact = gemm(a, b, Datapath(a=ops, b=ops, accumulation=dp.accumulation), C=c)
    if np.isfinite(exact).sum() > 10:  # (else both overflowed: nothing to tell them apart)
        assert not np.array_equal(fast, exact, equal_nan=True)  # the products were rounded


def test_chunked_with_rounded_products(monkeypatch):
    a, b, c = _problem(3, 1.0)
    acc = Chunked(chunk=16, inner=Sequential(format="fp16"), outer=Sequential(format="binary32"))
    dp = Datapath(a="fp16", b="fp16", product=Product(format="fp16"), accumulation=acc)
    fast_equals_generic(monkeypatch, a, b, dp, fast_expected=True, C=c)


@pytest.mark.parametrize(("ops", "pf", "kind"), [
    ("e4m3fn", "binary32", 0), ("fp16", "binary32", 0), ("e4m3fn", "e8m7_ieee", 0),
    ("e4m3fn", "fp16", PRODUCT_F16), ("fp16", "bf16", PRODUCT_BITS),
    ("fp16", "e5m2", PRODUCT_EMIT), ("fp16", "e4m3fn", PRODUCT_EMIT)])
def test_product_plans(ops, pf, kind):
    """Formats holding every exact product (e4m3fn products, 8 bits from 2^-18 to 2^17.8, in
    binary32 or in an IEEE e8m7) round nothing; fp16 products of e4m3fn values can overflow
    fp16 (448^2 > 65504), so they are rounded."""
    fmt = FORMATS.get(pf) or lowbit.FloatFormat(name=pf, exponent_bits=8, mantissa_bits=7,
                                               bias=127)
    operands = (FORMATS[ops], FORMATS[ops])
    plan = _product_plan(Product(format=fmt), operands, *_product_range(operands))
    assert plan[0][0] == kind
    assert (plan[0] == NO_PRODUCT) == (kind == 0)


def test_product_format_holding_every_product_changes_nothing():
    a, b, c = _problem(5, 1.0)
    exact = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format="fp16"))
    rounded = Datapath(a="e4m3fn", b="e4m3fn", product=Product(format="binary32"),
                       accumulation=Sequential(format="fp16"))
    assert np.array_equal(gemm(a, b, exact, C=c), gemm(a, b, rounded, C=c), equal_nan=True)
    slow, _ = gemm(a, b, rounded, C=c, counters=True)
    assert np.array_equal(gemm(a, b, rounded, C=c), slow, equal_nan=True)


def test_stochastic_accumulator_declines_products_that_may_overflow(monkeypatch):
    """fp16 products of fp16 operands may overflow to infinity, which the stochastic step does
    not take: the generic kernel runs. Products that cannot overflow (e4m3fn operands rounded
    to bf16) stay fast."""
    a, b, c = _problem(6, 1.0)
    acc = Sequential(format="fp16", rounding=R.STOCHASTIC, seed=2)
    fast_equals_generic(monkeypatch, a, b, Datapath(
        a="fp16", b="fp16", product=Product(format="fp16"), accumulation=acc),
        fast_expected=False, C=c)
    monkeypatch.undo()
    fast_equals_generic(monkeypatch, a, b, Datapath(
        a="e4m3fn", b="e4m3fn", product=Product(format="bf16"), accumulation=acc),
        fast_expected=X86, C=c)


@pytest.mark.parametrize("pm", [R.NEAREST_EVEN, R.NEAREST_AWAY])
def test_equals_fraction_replay(pm):
    rng = np.random.default_rng(8)
    a = lowbit.quantize(rng.standard_normal((3, 40)) * 2.0 ** rng.integers(-6, 6, (3, 40)),
                        "fp16")
    b = lowbit.quantize(rng.standard_normal((40, 4)), "fp16")
    acc = Sequential(format="bf16", rounding=R.TO_ODD)
    dp = Datapath(a="fp16", b="fp16", product=Product(format="e5m2", rounding=pm),
                  accumulation=acc)
    check_all(dp, a, b)  # every element against its Fraction replay


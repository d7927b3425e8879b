"""Operand formats as wide as float32 (bf16, tf32) in the fast float32 kernels.

Their products fit float32 in precision (16 and 22 bits) but not in range (bf16 subnormals
multiply to 2^-266), so the fast kernels judge them by the operands' own magnitude range
(``kernels_gemm_api._product_range``): taken where every product is exact in float32, declined
otherwise. Each GEMM is compared with the generic kernel bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gemm_sr import fast_equals_generic

from lowbit import FORMATS, Rounding, quantize
from lowbit.emulator.datapath import Chunked, Datapath, Product, Sequential
from lowbit.emulator.kernels_gemm_api import _product_range
from lowbit.emulator.kernels_gemm_fast import X86
from lowbit.emulator.kernels_range import magnitude_range

R = Rounding

ACCUMULATIONS = {
    "binary32": (Sequential(format="binary32"), True),
    "bf16": (Sequential(format="bf16"), True),
    "fp16": (Sequential(format="fp16"), True),
    "e4m3fn": (Sequential(format="e4m3fn"), True),
    "bf16 stochastic": (Sequential(format="bf16", rounding=R.STOCHASTIC, seed=3), X86),
    "binary32 toward zero": (Sequential(format="binary32", rounding=R.TOWARD_ZERO), X86),
    "chunked fp16 -> binary32": (Chunked(chunk=16, inner=Sequential(format="fp16"),
                                         outer=Sequential(format="binary32")), True),
}


def operands(ops: str, shape, rng, scale: float = 1.0):
    return quantize(rng.standard_normal(shape) * scale, ops)


@pytest.mark.parametrize("ops", ["bf16", "tf32"])
@pytest.mark.parametrize("acc", list(ACCUMULATIONS))
def test_training_range_data_takes_the_fast_kernels(monkeypatch, ops, acc):
    rec, fast = ACCUMULATIONS[acc]
    rng = np.random.default_rng(len(acc))
    scale = 2.0**-3 if acc == "e4m3fn" else 1.0  # (e4m3fn: sums of a few products overflow)
    a, b = operands(ops, (7, 90), rng, scale), operands(ops, (90, 29), rng, scale)
    a[0, :5] = 0.0
    fast_equals_generic(monkeypatch, a, b, Datapath(a=ops, b=ops, accumulation=rec), fast,
                        C=quantize(rng.standard_normal((7, 29)), "e4m3fn"))


def test_rounded_bf16_products(monkeypatch):
    rng = np.random.default_rng(5)
    a, b = operands("tf32", (6, 40), rng), operands("tf32", (40, 17), rng)
    dp = Datapath(a="tf32", b="tf32", product=Product(format="bf16"),
                  accumulation=Sequential(format="bf16"))
    fast_equals_generic(monkeypatch, a, b, dp, True)


@pytest.mark.parametrize(("small_a", "small_b", "taken"), [
    (2.0**-71 * (255 / 128), 2.0**-64 * (255 / 128), True),   # last bits 2^-78 * 2^-71
    (2.0**-72 * (255 / 128), 2.0**-64 * (255 / 128), False),  # 2^-150: below float32
    (2.0**-133, 1.0, False),                                   # bf16's smallest subnormal
])
def test_smallest_products_decide(monkeypatch, small_a, small_b, taken):
    """Products of full 8-bit significands whose last bits reach float32's smallest subnormal
    (``2^-149``) are exact in float32: taken; one binade lower they are not: declined (a bf16
    accumulator; binary32 ones take every product through the fused step, below)."""
    rng = np.random.default_rng(1)
    a, b = operands("bf16", (5, 24), rng), operands("bf16", (24, 9), rng)
    a[:, 3], b[3, :] = small_a, small_b
    a[2, 3] = -small_a
    for acc, fast in (("bf16", taken), ("binary32", True)):
        dp = Datapath(a="bf16", b="bf16", accumulation=Sequential(format=acc))
        monkeypatch.undo()
        fast_equals_generic(monkeypatch, a, b, dp, fast)


@pytest.mark.parametrize(("big_a", "big_b", "taken"), [
    (2.0**62, 2.0**63, True),    # 1.5 * 2^62 and 1.5 * 2^63: products below 2^127
    (2.0**63, 2.0**63, False),   # below 2^128 too, but the bound (2^64 * 2^64) says no
])
def test_largest_products_decide(monkeypatch, big_a, big_b, taken):
    """The bound on the largest product is the product of the magnitudes' binades: at most
    ``2^127`` taken (bf16 accumulator)."""
    rng = np.random.default_rng(2)
    a, b = operands("bf16", (5, 24), rng), operands("bf16", (24, 9), rng)
    a[1, 0], b[0, 2] = big_a * 1.5, big_b * 1.5
    dp = Datapath(a="bf16", b="bf16", accumulation=Sequential(format="bf16"))
    fast_equals_generic(monkeypatch, a, b, dp, taken)


def test_specials_are_left_out_of_the_range(monkeypatch):
    """Infinities and NaN do not widen the range: they multiply as IEEE says in both kernels."""
    rng = np.random.default_rng(3)
    a, b = operands("bf16", (5, 24), rng), operands("bf16", (24, 9), rng)
    a[0, 0], a[1, 1], b[2, 2] = np.inf, np.nan, -np.inf
    dp = Datapath(a="bf16", b="bf16", accumulation=Sequential(format="bf16"))
    got = fast_equals_generic(monkeypatch, a, b, dp, True)
    assert np.isnan(got[0]).sum() >= 1 and np.isnan(got[1]).all()


def test_magnitude_range():
    x = np.array([[0.0, -3.0, np.inf], [np.nan, 2.0**-140, -0.0]], np.float32)
    assert magnitude_range(x) == (2.0**-140, 3.0)
    assert magnitude_range(np.zeros((2, 2))) == (np.inf, 0.0)
    assert magnitude_range(np.array([np.nan, -np.inf])) == (np.inf, 0.0)


def test_product_range_from_formats_or_data():
    fp16, bf16, f32 = FORMATS["fp16"], FORMATS["bf16"], FORMATS["binary32"]
    assert _product_range((fp16, fp16)) == (32, -48)        # the formats decide
    assert _product_range((bf16, bf16)) is None              # no data: 2^-266 is possible
    a = np.array([[1.5, -2.0**-20]])                          # lsb 2^-27 .. msb 2^1
    b = np.array([[0.0], [3.0]])                              # 3: lsb 2^-6, msb 2^2
    assert _product_range((bf16, bf16), a, b) == (3, -33)
    assert _product_range((f32, f32), a, b) is None          # 48-bit products


@settings(max_examples=25, deadline=None)
@given(st.integers(-140, 120), st.integers(-140, 120), st.integers(0, 2**32 - 1),
       st.sampled_from(["binary32", "bf16", "fp16"]))
def test_any_range_equals_the_generic_kernel(ea, eb, seed, acc):
    """Hypothesis: bf16 operands around ``2^ea`` and ``2^eb`` (some spans taken, others
    declined): always the generic kernel's result."""
    from lowbit.emulator.gemm import gemm
    rng = np.random.default_rng(seed)
    a = operands("bf16", (4, 33), rng, 2.0**ea)
    b = operands("bf16", (33, 11), rng, 2.0**eb)
    dp = Datapath(a="bf16", b="bf16", accumulation=Sequential(format=acc))
    fast = gemm(a, b, dp)
    generic, _ = gemm(a, b, dp, counters=True)
    assert np.array_equal(fast.view(np.uint64), generic.view(np.uint64))


# ------------------------------------------------------------- binary32 operands, fused
def test_binary32_operands_take_the_fused_step(monkeypatch):
    """binary32 operands have products of up to 48 bits: the step is one FMA, rounding
    ``acc + a * b`` once. ``-1 + (1 + 2^-12)^2 = 2^-11 + 2^-24`` exactly, which a rounded
    product (``1 + 2^-11``, its last bit a tie) would lose."""
    x = 1.0 + 2.0**-12
    a, b = np.array([[1.0, x]]), np.array([[-1.0], [x]])
    dp = Datapath(a="binary32", b="binary32", accumulation=Sequential(format="binary32"))
    got = fast_equals_generic(monkeypatch, a, b, dp, True)
    assert got[0, 0] == 2.0**-11 + 2.0**-24


@pytest.mark.parametrize("rec", [
    Sequential(format="binary32"),
    Chunked(chunk=7, inner=Sequential(format="binary32"), outer=Sequential(format="binary32"))])
def test_binary32_operands_over_the_whole_range(monkeypatch, rec):
    """Products that underflow to subnormals or zero, overflow to infinity, and specials."""
    rng = np.random.default_rng(9)
    a = rng.standard_normal((9, 50)) * 2.0 ** rng.integers(-140, 66, (9, 50))
    b = rng.standard_normal((50, 13)) * 2.0 ** rng.integers(-100, 66, (50, 13))
    a[0, 0], a[1, 1], b[2, 2] = np.inf, np.nan, 0.0
    c = rng.standard_normal((9, 13)) * 2.0**-130
    dp = Datapath(a="binary32", b="binary32", accumulation=rec)
    got = fast_equals_generic(monkeypatch, a, b, dp, True, C=c)
    assert np.isinf(got).any() and np.isnan(got).any()


def test_binary32_operands_into_a_narrower_format_decline(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((4, 20)), rng.standard_normal((20, 9))
    dp = Datapath(a="binary32", b="binary32", accumulation=Sequential(format="bf16"))
    fast_equals_generic(monkeypatch, a, b, dp, False)

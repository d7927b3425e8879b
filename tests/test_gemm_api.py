"""gemm/dot/matmul behaviour: fast kernels against the generic kernel and numpy's own casts,
thread-count independence, counters, scales, promotion, ``out=``."""

from __future__ import annotations

import functools

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowbit import FORMATS, Rounding, quantize
from lowbit.emulator import kernels_accumulate_api as api
from lowbit.emulator.counters import Counters
from lowbit.emulator.datapath import (BinaryAccumulation, Chunked, Datapath, Exact,
                                      IntegerAccumulation, Promoted, Scaling, Sequential)
from lowbit.emulator.gemm import dot, gemm, matmul


def _same(x, y):
    return bool(np.all((x == y) | (np.isnan(x) & np.isnan(y))))


@functools.lru_cache(maxsize=None)
def _all_values(fmt):
    return FORMATS[fmt].values()


def _values(fmt, shape, rng, spread):
    v = _all_values(fmt)
    v = v[np.abs(v) <= float(FORMATS[fmt].max) * spread]
    return rng.choice(v, shape)


FAST_OPERANDS = ["fp16", "e4m3fn", "e5m2", "e3m4"]
FAST_ACCS = ["fp16", "bf16", "e4m3fn", "e5m2", "1-6-9", "e3m4", "binary32", "tf32"]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(FAST_OPERANDS), st.sampled_from(FAST_ACCS), st.sampled_from(FAST_ACCS),
       st.integers(0, 2**32 - 1), st.sampled_from([1.0, 1e-3, 1e-9]), st.sampled_from([0, 5]))
def test_fast_kernels_equal_the_generic_kernel(fa, acc, outer, seed, spread, chunk):
    """The fast float32 kernels (chosen from the operand formats) against the generic kernel
    (which sees no operand formats, so never takes the fast path)."""
    rng = np.random.default_rng(seed)
    a, b = _values(fa, (6, 70), rng, spread), _values(fa, (70, 9), rng, 1.0)
    c = np.asarray(quantize(_values("e4m3fn", (6, 9), rng, 1.0), acc), np.float64)
    if chunk:
        rec = Chunked(chunk=chunk, inner=Sequential(format=acc), outer=Sequential(format=outer))
        ref = api.run_chunked(a, b, None, None, chunk, rec.inner, rec.outer)
    else:
        rec = Sequential(format=acc)
        ref = api.run_chunked(a, b, c, None, None, rec, None)
    got = gemm(a, b, Datapath(a=fa, b=fa, accumulation=rec), C=None if chunk else c)
    assert _same(got, ref)


@pytest.mark.parametrize("fa", ["fp16", "e5m2"])
def test_fp16_accumulator_matches_numpy_float16_per_mac(fa):
    """Independent oracle: numpy's float64 -> float16 cast is correctly rounded, and the float64
    sum of an fp16 value and a product of <= 22 bits cannot land on an fp16 midpoint."""
    rng = np.random.default_rng(5)
    a = _values(fa, (8, 3000), rng, 1e-4)
    b = _values(fa, (3000, 8), rng, 1e-2)
    acc = np.zeros((8, 8))
    with np.errstate(over="ignore"):
        for k in range(a.shape[1]):
            acc = (acc + a[:, k, None] * b[None, k, :]).astype(np.float16).astype(np.float64)
    got = gemm(a, b, Datapath(a=fa, b=fa, accumulation=Sequential(format="fp16")))
    assert _same(got, acc)


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((9, 200)), rng.standard_normal((200, 5))
    dps = [Datapath(a="bf16", b="bf16", accumulation=Sequential(format="bf16", rounding=r, seed=4))
           for r in ("stochastic", "nearest_even")]
    dps.append(Datapath(a="e4m3fn", b="e4m3fn", accumulation=Chunked(
        chunk=16, inner=Sequential(format="e5m2", rounding="stochastic", seed=1),
        outer=Sequential(format="fp16"))))
    before = numba.get_num_threads()
    try:
        results = []
        for t in (1, before):
            numba.set_num_threads(t)
            results.append([gemm(a, b, dp) for dp in dps])
    finally:
        numba.set_num_threads(before)
    for x, y in zip(*results):
        assert _same(x, y)
    assert not _same(results[0][0], gemm(a, b, Datapath(a="bf16", b="bf16", accumulation=Sequential(
        format="bf16", rounding="stochastic", seed=5))))


def test_counters_count_swamping_flushes_overflow_and_saturation():
    dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="fp16"))
    r, cnt = gemm(np.ones((1, 4096)), np.ones((4096, 1)), dp, counters=True)
    assert r[0, 0] == 2048.0 and cnt == Counters(lost=4096 - 2048)
    _, cnt = gemm(np.array([[2.0**-14, -2.0**-14 * 0.75]]), np.array([[2.0**-11], [2.0**-11]]),
                  dp, counters=True)
    assert cnt.flushes >= 1
    e4 = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Sequential(format="e4m3fn"))
    r, cnt = gemm(np.array([[448.0, 448.0]]), np.ones((2, 1)), e4, counters=True)
    assert np.isnan(r[0, 0]) and cnt.overflows == 1
    sat = Datapath(a="int8", b="int8", accumulation=IntegerAccumulation(bits=8, overflow=0))
    r, cnt = gemm(np.full((1, 3), 100), np.ones((3, 1)), sat, counters=True)
    assert r[0, 0] == 127 and cnt.saturations == 2
    # counting does not change the result
    a = np.random.default_rng(0).standard_normal((4, 300))
    assert _same(gemm(a, a.T, dp), gemm(a, a.T, dp, counters=True)[0])


def test_promotion_bounds_the_error_of_a_narrow_accumulator():
    rng = np.random.default_rng(2)
    k = 4096
    a, b = np.abs(rng.standard_normal((4, k))), np.abs(rng.standard_normal((k, 4)))
    narrow = Sequential(format="e5m6")
    plain = gemm(a, b, Datapath(a="e4m3fn", b="e4m3fn", accumulation=narrow))
    promoted = gemm(a, b, Datapath(a="e4m3fn", b="e4m3fn", accumulation=Promoted(
        interval=128, inner=narrow, outer=Sequential(format="binary32"))))
    exact = gemm(a, b, Datapath(a="e4m3fn", b="e4m3fn", accumulation=Exact(format="binary32")))
    err = lambda x: np.max(np.abs(x - exact) / np.abs(exact))  # noqa: E731
    assert err(promoted) < err(plain) / 4


def test_mx_style_block_scales_multiply_each_k_block():
    rng = np.random.default_rng(3)
    a = rng.choice(_all_values("e4m3fn"), (3, 64))
    b = rng.choice(_all_values("e4m3fn"), (64, 2))
    sa = 2.0 ** rng.integers(-5, 5, (3, 2))
    sb = 2.0 ** rng.integers(-5, 5, (2, 2))
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Exact(format="binary32"),
                  scaling=Scaling(block_k=32, accumulator=Sequential(format="binary64")))
    got = gemm(a, b, dp, scale_a=sa, scale_b=sb)
    a_full = a * np.repeat(sa, 32, axis=1)
    b_full = b * np.repeat(sb, 32, axis=0)
    # each block partial is exact in binary32 here, and power-of-two scales are exact
    want = (a[:, :32] @ b[:32]) * (sa[:, :1] * sb[:1]) + (a[:, 32:] @ b[32:]) * (sa[:, 1:] * sb[1:])
    assert np.allclose(got, want, rtol=1e-6) and np.allclose(got, a_full @ b_full, rtol=1e-6)


def test_dot_matmul_and_out():
    dp = Datapath(a="bf16", b="bf16", accumulation=Sequential(format="binary32"))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, 7))
    y = rng.standard_normal((7, 4))
    r = matmul(x, y, dp)
    assert r.shape == (2, 3, 5, 4)
    assert _same(r[1, 2], gemm(x[1, 2], y, dp))
    assert dot(x[0, 0, 0], y[:, 0], dp) == gemm(x[0, 0, 0][None], y[:, :1], dp)[0, 0]
    out = np.empty((5, 4), np.float32)
    assert gemm(x[0, 0], y, dp, out=out) is out
    r2, cnt = matmul(x, y, dp, counters=True)
    assert _same(r, r2) and isinstance(cnt, Counters)


def test_binary_and_integer_paths_with_initial_accumulator():
    rng = np.random.default_rng(6)
    a, b = rng.choice([-1.0, 1.0], (4, 130)), rng.choice([-1.0, 1.0], (130, 3))
    c = rng.integers(-5, 5, (4, 3)).astype(float)
    bdp = Datapath(a="binary", b="binary", accumulation=BinaryAccumulation())
    assert np.array_equal(gemm(a, b, bdp, C=c), a @ b + c)
    idp = Datapath(a="int4", b="int4", accumulation=IntegerAccumulation(bits=32))
    ai, bi = rng.integers(-8, 8, (4, 50)), rng.integers(-8, 8, (50, 3))
    assert np.array_equal(gemm(ai, bi, idp, C=c), ai @ bi + c)


@pytest.mark.parametrize("acc", [Sequential(format="fp16"), Sequential(format="binary32"),
                                 Sequential(format="binary32", rounding=Rounding.TOWARD_ZERO),
                                 Sequential(format="e4m3fn"),
                                 Chunked(chunk=2, inner=Sequential(format="fp16"),
                                         outer=Sequential(format="binary32")),
                                 Exact(), "H100"])
def test_nan_results_are_one_pattern_whichever_kernel_runs(acc):
    """NaN operands, inf - inf and NaN in C give numpy's positive quiet NaN from the fast
    kernels and from the generic one (counters on), every other result bit for bit equal."""
    from lowbit.accelerators import tensor_core
    dp = (tensor_core("H100", "e4m3fn") if acc == "H100" else
          Datapath(a="e4m3fn", b="e4m3fn", accumulation=acc))
    a = np.ones((5, 6))
    a[0, 1], a[1, 2], a[2, 0] = np.nan, 448.0, -448.0   # NaN operand; e4m3fn's largest
    b = np.ones((6, 16))
    b[2, :8], b[0, :8] = 448.0, 448.0                    # 448^2: inf in fp16 and e4m3fn
    b[0, 8:] = -np.nan
    c = np.zeros((5, 16))
    c[3, 3], c[4, 4] = -np.nan, -np.inf
    fast = gemm(a, b, dp, C=c)
    generic, _ = gemm(a, b, dp, C=c, counters=True)
    assert np.array_equal(fast.view(np.uint64), generic.view(np.uint64))
    nan = np.isnan(fast)
    assert nan[0].all() and nan[3, 3] and nan[:, 8:].any()
    assert (fast[nan].view(np.uint64) == np.float64(np.nan).view(np.uint64)).all()
    out = np.empty((5, 16), np.float32)  # (every datapath here outputs float32 values)
    gemm(a, b, dp, C=c, out=out)
    assert (out[nan].view(np.uint32) == 0x7FC00000).all()


@pytest.mark.parametrize("inner", ["H100", Sequential(format="fp16"),
                                   Chunked(chunk=3, inner=Sequential(format="e5m2"),
                                           outer=Sequential(format="fp16"))])
def test_promotion_into_binary32_equals_the_generic_step(monkeypatch, inner):
    """Unscaled promotion into binary32 (nearest-even) is the host's float32 addition when
    nothing is counted; the generic step (counters on) gives the same bits: cancellations,
    zeros of both signs, infinities from overflowing partials, inf + -inf, NaN."""
    from lowbit.accelerators import tensor_core
    rec = tensor_core("H100", "e4m3fn").accumulation if inner == "H100" else inner
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Promoted(
        interval=5, inner=rec, outer=Sequential(format="binary32")))
    rng = np.random.default_rng(17)
    a = quantize(rng.standard_normal((6, 23)) * 2.0 ** rng.integers(-6, 7, (6, 23)), "e4m3fn")
    b = quantize(rng.standard_normal((23, 11)) * 2.0 ** rng.integers(-6, 7, (23, 11)), "e4m3fn")
    a[0], b[:, 0] = 0.0, -1.0                      # row 0: -0 products only
    a[1, :5], b[:5, 1] = 448.0, 448.0              # a slice of 5 * 448^2: inf in fp16 and e5m2
    a[2, 5], a[2, 6], b[5, 2], b[6, 2] = 448.0, -448.0, 448.0, 448.0  # exact cancellation
    a[3, 0] = np.nan
    a[4, :10], b[:5, 4], b[5:10, 4] = 448.0, 448.0, -448.0  # inf, then -inf in fp16 / e5m2
    c = quantize(rng.standard_normal((6, 11)), "binary32")
    c[0, 0] = -0.0
    from lowbit.emulator import kernels_accumulate as KA
    calls = []
    real = KA.add_partial_kernel
    monkeypatch.setattr(KA, "add_partial_kernel", lambda *args: calls.append(1) or real(*args))
    fast = gemm(a, b, dp, C=c)
    assert calls == []  # every promotion step was a float32 addition
    generic, _ = gemm(a, b, dp, C=c, counters=True)
    assert len(calls) == 5  # ceil(23 / 5) slices through the generic step
    assert np.array_equal(fast.view(np.uint64), generic.view(np.uint64))
    assert np.isnan(fast[3]).all() and np.isinf(fast[1, 1]) == (inner != "H100")
    assert np.isnan(fast[4, 4]) == (inner != "H100")  # inf + -inf between two promotions


def test_promoted_run_with_an_accumulator_beyond_binary32():
    """``Promoted.run`` called directly with ``c`` values binary32 cannot hold: the first
    promotion rounds ``c + partial`` exactly, not ``c`` first (so the float32 shortcut must
    not apply)."""
    rec = Promoted(interval=4, inner=Sequential(format="binary32"),
                   outer=Sequential(format="binary32"))
    a, b = np.array([[2.0**-24, 0.0]]), np.array([[1.0], [0.0]])
    c = np.array([[1.0 + 2.0**-24 + 2.0**-60]])  # a hair above a binary32 midpoint
    got = rec.run(a, b, c)
    want = rec.run(a, b, c, np.zeros(4, np.int64))  # the generic step (counters)
    # exact: 1 + 2^-23 + 2^-60 -> 1 + 2^-23; c rounded first (1 + 2^-23) plus 2^-24 would tie
    # to 1 + 2^-22
    assert got[0, 0] == want[0, 0] == 1.0 + 2.0**-23

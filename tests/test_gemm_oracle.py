"""Every accumulation model equals an exact Fraction replay of each rounding step it declares.

The oracle below rounds with ``fractions.Fraction`` from the format records' exact facts (mantissa
bits, exponent range, ``.max``, overflow policy); it never calls the kernels or ``quantize``.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lowbit import FORMATS, IntOverflow, Overflow, Rounding
from lowbit.emulator.datapath import (BinaryAccumulation, Chunked, Datapath, Exact,
                                      IntegerAccumulation, Product, Promoted, Scaling, Sequential)
from lowbit.emulator.gemm import gemm
from lowbit.emulator.rng import random_bits

R = Rounding
ACC_FORMATS = ["fp16", "bf16", "e4m3fn", "e5m2", "1-6-9", "binary32", "e3m4"]
OPERANDS = ["fp16", "bf16", "e4m3fn", "e5m2", "1-6-9", "e2m1fn"]
MODES = [R.NEAREST_EVEN, R.NEAREST_AWAY, R.TOWARD_ZERO, R.UP, R.DOWN, R.TO_ODD, R.STOCHASTIC]
INF = math.inf


# ------------------------------------------------------------------------------ the oracle
def ulp_at(x: Fraction, fmt) -> Fraction:
    """The grid step around |x| > 0 (subnormal step below the smallest normal)."""
    emin, _ = fmt.binary_exponent_range
    m = fmt.mantissa_bits
    e = math.floor(math.log2(abs(x)))
    while Fraction(2) ** e > abs(x):
        e -= 1
    while Fraction(2) ** (e + 1) <= abs(x):
        e += 1
    if e < emin:
        return Fraction(2) ** (emin - m) if fmt.subnormals else Fraction(2) ** emin
    return Fraction(2) ** (e - m)


def overflowed(negative: bool, fmt, mode, from_inf: bool):
    pol = fmt.overflow
    toward_zero = mode == R.TOWARD_ZERO or (mode == R.DOWN and not negative) or (
        mode == R.UP and negative)
    if pol == Overflow.SATURATE or (pol == Overflow.SATURATE_KEEP_INF and not from_inf) or (
            toward_zero and not from_inf and pol != Overflow.SATURATE_KEEP_INF):
        mag = fmt.max
    elif pol == Overflow.NAN:
        return math.nan
    else:
        return -INF if negative else INF
    return -mag if negative else mag


def round_frac(x, fmt, mode, rbits: int = 0, nbits: int = 62):
    """x (Fraction, or a float inf/NaN) rounded to fmt: a Fraction, or a float for specials."""
    if isinstance(x, float):
        if math.isnan(x):
            return x
        return overflowed(x < 0, fmt, mode, True)
    if x == 0:
        return Fraction(0)
    neg, a = x < 0, abs(x)
    u = ulp_at(a, fmt)
    lo = (a // u) * u
    frac = (a - lo) / u
    if frac == 0:
        away = False
    elif mode == R.NEAREST_EVEN:
        away = frac > Fraction(1, 2) or (frac == Fraction(1, 2) and (lo / u) % 2 == 1)
    elif mode == R.NEAREST_AWAY:
        away = frac >= Fraction(1, 2)
    elif mode == R.TOWARD_ZERO:
        away = False
    elif mode == R.UP:
        away = not neg
    elif mode == R.DOWN:
        away = neg
    elif mode == R.TO_ODD:
        away = (lo / u) % 2 == 0
    else:
        away = math.floor(frac * 2**nbits) + (rbits >> (64 - nbits)) >= 2**nbits
    mag = lo + u if away else lo
    if mag > fmt.max:
        return overflowed(neg, fmt, mode, False)
    return -mag if neg else mag


def add(x, y):
    """Exact sum of Fractions / float specials."""
    if isinstance(x, float) or isinstance(y, float):
        return float(x) + float(y)
    return x + y


def step(acc, p, seq, index):
    rb = int(random_bits(seq.seed, index)) if seq.rounding == R.STOCHASTIC else 0
    return round_frac(add(acc, p), seq.format, seq.rounding, rb)


def product(x, y, prod):
    p = Fraction(x) * Fraction(y)
    return p if prod.format is None else round_frac(p, prod.format, prod.rounding)


def replay(acc_rec, a, b, c, prod, i, j, n, ktot, k0=0):
    """The oracle of element (i, j) of accumulation record ``acc_rec`` over a's columns."""
    e, kk = i * n + j, a.shape[1]
    ps = [product(a[i, k], b[k, j], prod) for k in range(kk)]
    start = Fraction(0)
    if c is not None:  # C is brought to the accumulator's format (RNE) first
        fmt = acc_rec.format if not isinstance(acc_rec, Chunked) else acc_rec.outer.format
        start = round_frac(Fraction(c[i, j]), fmt, R.NEAREST_EVEN)
    if isinstance(acc_rec, Sequential):
        acc = start
        for k, p in enumerate(ps):
            acc = step(acc, p, acc_rec, e * ktot + k0 + k)
        return acc
    if isinstance(acc_rec, Chunked):
        acc, ch = start, acc_rec.chunk
        for q in range(0, kk, ch):  # chunks restart at the slice's first column
            part = Fraction(0)
            for k in range(q, min(kk, q + ch)):
                part = step(part, ps[k], acc_rec.inner, e * ktot + k0 + k)
            acc = step(acc, part, acc_rec.outer, e * ktot + k0 + q)
        return acc
    if isinstance(acc_rec, Promoted):
        acc, iv = start, acc_rec.interval
        nq = -(-kk // iv)
        for q in range(0, kk, iv):
            part = replay(acc_rec.inner, a[:, q:q + iv], b[q:q + iv], None, prod, i, j, n, ktot,
                          q)
            acc = step(acc, part, acc_rec.outer, e * nq + q // iv)
        return acc
    if isinstance(acc_rec, Exact):
        return round_frac(sum(ps, start), acc_rec.format, acc_rec.rounding)
    raise AssertionError(acc_rec)


def same(got: float, want) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    return got == float(want) or (isinstance(want, Fraction) and Fraction(got) == want)


def check_all(dp, a, b, c=None):
    got = gemm(a, b, dp, C=c)
    m, n = got.shape
    for i in range(m):
        for j in range(n):
            want = replay(dp.accumulation, a, b, c, dp.product, i, j, n, a.shape[1])
            assert same(got[i, j], want), (i, j, got[i, j], want, dp)


# ------------------------------------------------------------------------------ strategies
@functools.lru_cache(maxsize=None)
def format_values(name: str) -> np.ndarray:
    return FORMATS[name].values()


def operand_values(fmt_name, draw, shape, scale_exp):
    vals = format_values(fmt_name)
    idx = draw(st.lists(st.integers(0, len(vals) - 1), min_size=shape[0] * shape[1],
                        max_size=shape[0] * shape[1]))
    zero_or = draw(st.sampled_from([0, 1]))
    x = vals[np.array(idx)].reshape(shape)
    if zero_or:
        x = np.where(np.arange(x.size).reshape(shape) % 5 == 0, 0.0, x)
    return x


@st.composite
def problems(draw, acc_kind):
    m, n, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 40))
    fa, fb = draw(st.sampled_from(OPERANDS)), draw(st.sampled_from(OPERANDS))
    a = operand_values(fa, draw, (m, k), 0)
    b = operand_values(fb, draw, (k, n), 0)
    acc_fmt = draw(st.sampled_from(ACC_FORMATS))
    mode = draw(st.sampled_from(MODES))
    seq = Sequential(format=acc_fmt, rounding=mode, seed=draw(st.integers(0, 9)))
    outer = Sequential(format=draw(st.sampled_from(ACC_FORMATS)),
                       rounding=draw(st.sampled_from(MODES)), seed=7)
    if acc_kind == "sequential":
        acc = seq
    elif acc_kind == "chunked":
        acc = Chunked(chunk=draw(st.integers(1, 9)), inner=seq, outer=outer)
    elif acc_kind == "promoted":
        inner = seq if draw(st.booleans()) else Chunked(chunk=3, inner=seq, outer=seq)
        acc = Promoted(interval=draw(st.integers(1, 12)), inner=inner, outer=outer)
    else:
        acc = Exact(format=acc_fmt, rounding=draw(st.sampled_from(MODES[:-1])))
    prod = Product()
    if acc_kind != "exact" and draw(st.booleans()):
        prod = Product(format=draw(st.sampled_from(["e4m3fn", "fp16", "bf16", "e5m2"])),
                       rounding=draw(st.sampled_from(MODES[:-1])))
    c = None
    if draw(st.booleans()):
        c = operand_values(acc_fmt if acc_fmt != "binary32" else "bf16", draw, (m, n), 0)
    return Datapath(a=fa, b=fb, accumulation=acc, product=prod), a, b, c


@pytest.mark.parametrize("kind", ["sequential", "chunked", "promoted", "exact"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_float_accumulations_replay_exactly(kind, data):
    dp, a, b, c = data.draw(problems(kind))
    check_all(dp, a, b, c)


# ------------------------------------------------------------------------------ pinned cases
def _dp(acc, a="fp16", b="fp16", **kw):
    return Datapath(a=a, b=b, accumulation=acc, **kw)


@pytest.mark.parametrize("acc_fmt", ["fp16", "bf16", "e4m3fn", "1-6-9"])
def test_swamping_then_chunking(acc_fmt):
    fmt = FORMATS[acc_fmt]
    k = 2 ** (fmt.mantissa_bits + 3)
    a, b = np.ones((1, k)), np.ones((k, 1))
    seq = Sequential(format=acc_fmt)
    check_all(_dp(seq, "fp16"), a, b)
    got = gemm(a, b, _dp(seq, "fp16"))[0, 0]
    assert got == min(2 ** (fmt.mantissa_bits + 1), float(fmt.max))  # swamped (or saturated)
    check_all(_dp(Chunked(chunk=16, inner=seq, outer=Sequential(format="binary32")), "fp16"), a, b)


def test_subnormal_cancellation_and_overflow_pins():
    f16 = FORMATS["fp16"]
    tiny = float(f16.min_subnormal)
    a = np.array([[tiny, 65504.0, 65504.0, -65504.0, 3.0, -3.0]])
    b = np.array([[0.5], [2.0], [1.0], [1.0], [tiny], [tiny]])
    for acc in [Sequential(format="fp16"), Sequential(format="e4m3fn"), Sequential(format="e5m2"),
                Sequential(format="bf16", rounding=R.TOWARD_ZERO), Exact(format="fp16")]:
        check_all(_dp(acc), a, b)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("acc_fmt", ACC_FORMATS)
def test_wide_rows_replay_exactly(acc_fmt, mode):
    """Rows of 37 accumulators: the vectorised j loop of the generic kernel (no product rounding,
    no counters) and its remainder, through cancellation, inexact float64 sums (round to odd),
    subnormals and overflow. binary32 operands keep the fast float32 kernels out (their products
    can pass float32's range)."""
    rng = np.random.default_rng(len(acc_fmt) * 7 + int(mode))
    half = FORMATS[acc_fmt].binary_exponent_range[1] // 2
    m, k, n = 2, 12, 37

    def operand(shape):
        sig = rng.standard_normal(shape).astype(np.float16).astype(np.float64)
        return (sig * 2.0 ** rng.integers(-half - 8, half, shape)).astype(np.float32)

    a, b = operand((m, k)), operand((k, n))
    b[:, ::5] = -b[:, ::5]
    b[3, ::4] = 0.0
    check_all(_dp(Sequential(format=acc_fmt, rounding=mode, seed=3), a="binary32",
                  b="binary32"), a.astype(np.float64), b.astype(np.float64))


def test_e4m3_accumulator_overflow_is_nan_and_sticks():
    a = np.array([[240.0, 240.0, -240.0]])
    b = np.ones((3, 1))
    got = gemm(a, b, _dp(Sequential(format="e4m3fn"), a="e4m3fn", b="e4m3fn"))
    assert math.isnan(got[0, 0])
    check_all(_dp(Sequential(format="e4m3fn"), a="e4m3fn", b="e4m3fn"), a, b)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.sampled_from([4, 8, 12, 32]), st.sampled_from(list(IntOverflow)),
       st.integers(0, 2**32 - 1))
@example(k=20, bits=8, overflow=IntOverflow.WRAP, seed=0)
@example(k=20, bits=4, overflow=IntOverflow.SATURATE, seed=1)
def test_integer_accumulation_replays(k, bits, overflow, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-8, 8, (2, k)), rng.integers(-8, 8, (k, 3))
    acc = IntegerAccumulation(bits=bits, overflow=overflow)
    got = gemm(a, b, Datapath(a="int4", b="int4", accumulation=acc))
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    for i in range(2):
        for j in range(3):
            s = 0
            for t in range(k):
                s += int(a[i, t]) * int(b[t, j])
                if overflow == IntOverflow.WRAP:
                    s = (s - lo) % 2**bits + lo
                else:
                    s = min(max(s, lo), hi)
            assert got[i, j] == s


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 200), st.integers(0, 2**32 - 1))
@example(k=64, seed=0)
@example(k=65, seed=1)
def test_binary_xnor_popcount(k, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.choice([-1.0, 1.0], (3, k)), rng.choice([-1.0, 1.0], (k, 2))
    got = gemm(a, b, Datapath(a="binary", b="binary", accumulation=BinaryAccumulation()))
    want = [[sum(int(a[i, t]) * int(b[t, j]) for t in range(k)) for j in range(2)]
            for i in range(3)]
    assert got.tolist() == want


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 70), st.sampled_from([1, 4, 32]), st.integers(0, 2**32 - 1),
       st.sampled_from(["binary32", "bf16", "fp16"]))
def test_scales_are_applied_per_k_block(k, block, seed, acc_fmt):
    rng = np.random.default_rng(seed)
    m, n = 2, 3
    a = rng.choice(format_values("e4m3fn"), (m, k))
    b = rng.choice(format_values("e4m3fn"), (k, n))
    nb = -(-k // block)
    sa = 2.0 ** rng.integers(-8, 8, (m, nb)) * rng.choice([1.0, 0.75, 1.5], (m, nb))
    sb = 2.0 ** rng.integers(-8, 8, (nb, 1))
    outer = Sequential(format=acc_fmt)
    inner = Sequential(format="binary32")
    dp = Datapath(a="e4m3fn", b="e4m3fn", accumulation=inner,
                  scaling=Scaling(block_k=block, accumulator=outer))
    got = gemm(a, b, dp, scale_a=sa, scale_b=sb)
    fo = FORMATS[acc_fmt]
    for i in range(m):
        for j in range(n):
            acc = Fraction(0)
            for q in range(nb):
                part = replay(inner, a[:, q * block:(q + 1) * block],
                              b[q * block:(q + 1) * block], None, Product(), i, j, n, k,
                              q * block)
                s = round_frac(Fraction(sa[i, q]) * Fraction(sb[q, 0]), fo, R.NEAREST_EVEN)
                t = round_frac(part * s, fo, R.NEAREST_EVEN)
                acc = round_frac(add(acc, t), fo, R.NEAREST_EVEN)
            assert same(got[i, j], acc)


def test_output_rounding_is_one_final_step():
    a = np.full((1, 8), 1.0 + 2.0**-7)
    b = np.full((8, 1), 1.0 + 2.0**-9)
    dp = _dp(Sequential(format="binary32"), a="bf16", b="fp16", output="e4m3fn",
             output_rounding=R.TOWARD_ZERO)
    exact = 8 * Fraction(1 + 2**-7) * Fraction(1 + 2**-9)
    got = gemm(a, b, dp)[0, 0]
    assert got == float(round_frac(round_frac(exact, FORMATS["binary32"], R.NEAREST_EVEN),
                                   FORMATS["e4m3fn"], R.TOWARD_ZERO))

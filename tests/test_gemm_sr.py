"""Stochastic rounding of accumulators in the fast float32 kernels (``kernels_gemm_sr``, kind 7).

The kernel reads most decisions from the high random word and the truncated float32 sum; the
rest (*ambiguous* lanes) it decides from the truncation's exact error in float64. These tests
check single steps against a Fraction oracle with random words chosen to make every lane
ambiguous (the finaliser of the counter-based generator is inverted for that), whole GEMMs
against the generic kernel and the Fraction replay, the stream index crossing a 2^32 boundary
inside a register block, and the hand-back to the generic kernel when a lane cannot be decided.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
from test_gemm_oracle import replay, round_frac, ulp_at

from lowbit import FORMATS, FloatFormat, Rounding
from lowbit.emulator import kernels_gemm_api
from lowbit.emulator.datapath import Chunked, Datapath, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.emulator.kernels_accumulate_api import run_chunked
from lowbit.emulator.kernels_gemm_fast import X86, restore_mode, rz_mode
from lowbit.emulator.kernels_gemm_sr import (BINARY32_BITS, decide, finish, grid, resolve_all,
                                             round_binary32)
from lowbit.emulator.quantize import _f32_params
from lowbit.emulator.rng import LANE, MUL1, MUL2

R = Rounding
#: Single-step tests drive the kernel's IR with the host's mode set toward zero (x86 MXCSR).
#: Off x86 stochastic steps take the generic kernel, which the GEMM tests below still check
#: (``fast_equals_generic`` expects the fast kernel exactly where it exists).
x86_only = pytest.mark.skipif(not X86, reason="the step's IR sets MXCSR: x86 hosts only")
M32 = 0xFFFFFFFF


# ------------------------------------------------------------- the generator, both ways
def finalise(z: int) -> int:
    z ^= z >> 16
    z = (z * MUL1) & M32
    z ^= z >> 15
    z = (z * MUL2) & M32
    return z ^ (z >> 16)


def unfinalise(h: int) -> int:
    """The Weyl sum whose finalised word is ``h`` (each stage of the finaliser inverted)."""
    z = h ^ (h >> 16)
    z = (z * pow(MUL2, -1, 1 << 32)) & M32
    z ^= (z >> 15) ^ (z >> 30)
    z = (z * pow(MUL1, -1, 1 << 32)) & M32
    return z ^ (z >> 16)


def test_unfinalise_inverts_the_finaliser():
    rng = np.random.default_rng(0)
    for h in [0, 1, M32, *map(int, rng.integers(0, 1 << 32, 200))]:
        assert finalise(unfinalise(h)) == h


# ------------------------------------------------------------- one step, eight lanes
_HARNESS = {}


def harness(mantissa_bits: int, nbits: int):
    """njit ``run(acc, p, weyl, wlo, out, g, fail)``: every 8 lanes through ``decide``,
    ``resolve_all`` and ``finish`` (binary32: ``round_binary32``) with the host rounding toward
    zero, as a block does. The high random word comes from ``weyl``, the low one from ``wlo``
    (a block passes the same sums; a test may choose both words)."""
    key = (mantissa_bits, nbits)
    if key in _HARNESS:
        return _HARNESS[key]
    f1 = types.Array(types.float32, 1, "C")
    u1 = types.Array(types.uint32, 1, "C")
    i1 = types.Array(types.int32, 1, "C")

    @intrinsic
    def step8(typingctx, acc, p, weyl, wlo, out, g, fail, i):
        sig = types.void(acc, p, weyl, wlo, out, g, fail, i)

        def codegen(context, builder, signature, args):
            data = [context.make_array(t)(context, builder, v).data
                    for t, v in zip((f1, f1, u1, u1, f1), args[:5])]
            fail_d = context.make_array(i1)(context, builder, args[6]).data

            def at(ptr, ty):
                vec = ir.VectorType(ty, 8).as_pointer()
                return builder.bitcast(builder.gep(ptr, [args[7]]), vec)

            f32, i32 = ir.FloatType(), ir.IntType(32)
            # as in a block: the mode is set in a basic block of its own, before the loads and
            # sums (instruction scheduling may move a float addition across it in one block)
            saved = rz_mode(builder)
            body = builder.append_basic_block("rz")
            builder.branch(body)
            builder.position_at_end(body)
            accv, pv = (builder.load(at(d, f32), align=4) for d in data[:2])
            weylv, wlov = (builder.load(at(d, i32), align=4) for d in data[2:4])
            sv = builder.fadd(accv, pv)
            if mantissa_bits == BINARY32_BITS:
                r = round_binary32(builder, sv, accv, pv, weylv, nbits, wlov)
            else:
                gv = [builder.trunc(builder.extract_value(args[5], j), i32) for j in range(9)]
                gr = grid(builder, gv, nbits, 8, mantissa_bits)
                ln = decide(builder, sv, accv, pv, weylv, gr)._replace(weyl=wlov)
                (t,) = resolve_all(builder, [ln], gr, fail_d)
                r = finish(builder, ln, t, gr, gv)
            builder.store(r, at(data[4], f32), align=4)
            tail = builder.append_basic_block("restore")
            builder.branch(tail)
            builder.position_at_end(tail)
            restore_mode(builder, saved)
            return context.get_dummy_value()

        return sig, codegen

    @njit
    def run(acc, p, weyl, wlo, out, g, fail):
        for i in range(0, acc.size, 8):
            step8(acc, p, weyl, wlo, out, g, fail, i)

    _HARNESS[key] = run
    return run


def ambiguous_weyl(x: Fraction, fmt, nbits: int, rng) -> int:
    """A Weyl sum whose high random word makes the lane of exact sum ``x`` ambiguous
    (``A + B = 2^k - 1``, ``k = min(N, 23 - m)``; the low bits random)."""
    k = min(nbits, 23 - fmt.mantissa_bits)
    a = abs(x)
    f = Fraction(0) if a == 0 else (a - (a // ulp_at(a, fmt)) * ulp_at(a, fmt)) / ulp_at(a, fmt)
    top = (1 << k) - 1 - math.floor(f * 2**k)
    low = int(rng.integers(0, 1 << (32 - k))) if k < 32 else 0
    return unfinalise((top << (32 - k)) | low)


def check_steps(fmt_name: str, nbits: int, acc, p, weyl, low_words=None) -> None:
    """Steps ``acc + p`` with the random words of Weyl sums ``weyl`` against the Fraction
    oracle; ``low_words`` (optional) replaces each lane's low random word."""
    fmt = FORMATS[fmt_name]
    acc, p = np.float32(acc), np.float32(p)
    pad = -len(acc) % 8
    acc, p = (np.concatenate([v, np.zeros(pad, np.float32)]) for v in (acc, p))
    weyl = np.concatenate([np.array(weyl, np.uint64), np.zeros(pad, np.uint64)]).astype(np.uint32)
    wlo = weyl.copy()
    if low_words is not None:
        wlo[:len(low_words)] = [(unfinalise(w) - LANE) & M32 for w in low_words]
    out = np.empty_like(acc)
    fail = np.zeros(1, np.int32)
    g = tuple(int(v) for v in _f32_params(fmt, R.STOCHASTIC))
    harness(fmt.mantissa_bits, nbits)(acc, p, weyl, wlo, out, g, fail)
    assert fail[0] == 0
    for x, y, w, lo, got in zip(acc, p, weyl, wlo, out):
        rnd = (finalise(int(w)) << 32) | finalise((int(lo) + LANE) & M32)
        want = round_frac(Fraction(float(x)) + Fraction(float(y)), fmt, R.STOCHASTIC, rnd,
                          nbits)
        assert got == float(want) or (math.isnan(got) and math.isnan(float(want))), \
            (fmt_name, nbits, float(x), float(y), int(w), float(got), float(want))


def cases(fmt_name: str, n: int, seed: int):
    """Accumulator values of the format and products of up to 22 bits at gaps up to 40 binades
    either way (so the float32 sum is often inexact), cancellations and zeros."""
    from lowbit import quantize
    rng = np.random.default_rng(seed)
    fmt = FORMATS[fmt_name]
    emin, emax = fmt.binary_exponent_range
    acc = rng.standard_normal(n) * 2.0 ** rng.integers(emin - 4, emax - 1, n)
    acc = quantize(acc, fmt_name)
    sig = rng.integers(1, 1 << 22, n) * rng.choice([-1.0, 1.0], n)
    scale = 2.0 ** (np.floor(np.log2(np.abs(acc) + 2.0 ** (emin - fmt.mantissa_bits)))
                    + rng.integers(-40, 3, n) - 21)
    p = np.float32(sig * scale)
    p[:8] = -acc[:8]  # exact cancellations
    acc[8:12] = 0.0
    return np.float32(acc), p


@x86_only
@pytest.mark.parametrize(("fmt_name", "nbits"), [
    ("fp16", 62), ("fp16", 14), ("fp16", 40), ("e5m2", 62), ("e4m3fn", 62), ("e4m3fn", 21),
    ("e3m4", 30)])
def test_ambiguous_lanes_against_fractions(fmt_name, nbits):
    """Every lane ambiguous: the float64 resolution decides each exactly."""
    rng = np.random.default_rng(nbits)
    acc, p = cases(fmt_name, 400, nbits)
    weyl = [ambiguous_weyl(Fraction(float(x)) + Fraction(float(y)), FORMATS[fmt_name], nbits, rng)
            for x, y in zip(acc, p)]
    check_steps(fmt_name, nbits, acc, p, weyl)


@x86_only
@pytest.mark.parametrize(("fmt_name", "nbits"), [("fp16", 62), ("fp16", 8), ("fp16", 13),
                                                 ("e5m2", 3), ("e4m3fn", 62)])
def test_random_lanes_against_fractions(fmt_name, nbits):
    rng = np.random.default_rng(7)
    acc, p = cases(fmt_name, 800, 11)
    check_steps(fmt_name, nbits, acc, p, rng.integers(0, 1 << 32, acc.size))


@x86_only
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(-30, 15), st.integers(1, 2**22 - 1),
       st.integers(-45, 16), st.booleans(), st.sampled_from([62, 20, 14]))
def test_ambiguous_step_property(seed, ea, sig, ep, neg, nbits):
    """Hypothesis: one fp16 accumulator value and one product, ambiguous and random lanes."""
    from lowbit import quantize
    acc = float(quantize(np.array([1.5 * 2.0**ea]), "fp16")[0])
    p = float(np.float32((-1.0 if neg else 1.0) * sig * 2.0 ** (ep - 21)))
    rng = np.random.default_rng(seed)
    x = Fraction(acc) + Fraction(p)
    check_steps("fp16", nbits, [acc, acc], [p, p],
                [ambiguous_weyl(x, FORMATS["fp16"], nbits, rng), seed])


@x86_only
@pytest.mark.parametrize("nbits", [62, 40])
def test_tiny_product_of_opposite_sign(nbits):
    """A product far below the accumulator's float32 unit and of the opposite sign: the
    truncation's error ``2^-9 - 2^-48`` (from ``2^15 - 2^-48``) needs 40 bits, so its float32
    truncation ``2^-9 - 2^-33`` would decide some random words wrongly. The exact sum lies
    ``1 - 2^-52`` quanta above ``2^15 - 16``: it rounds up iff ``R >= 2^(nbits - 52)``
    (``R >= 1`` for 40 bits), so low words just above that threshold and up to ``2^25``
    times it must round up, and below it down."""
    base = 1 << (64 - nbits)      # one unit of R in the 64-bit word
    first = 1 << max(nbits - 52, 0)  # the smallest R that rounds up
    rs = [first - 1, first, first + 1, first * 2**5, first * 2**14, first * 2**24,
          first * 2**26, 1 << (nbits - 14)]
    rs = [r for r in rs if 0 <= r < 1 << (nbits - 13)]  # (top 13 bits of R zero: ambiguous)
    words = [r * base for r in rs]
    acc = [2.0**15, -2.0**15] * len(words)
    p = [-2.0**-48, 2.0**-48] * len(words)
    lows = [w & M32 for w in words for _ in (0, 1)]
    weyl = [unfinalise(w >> 32) for w in words for _ in (0, 1)]
    check_steps("fp16", nbits, acc, p, weyl, lows)


# ------------------------------------------------------------- binary32 accumulators
def check_binary32_steps(nbits: int, acc, p, words) -> None:
    """``acc + p`` with the 64-bit random words ``words`` against the Fraction oracle."""
    fmt = FORMATS["binary32"]
    pad = -len(acc) % 8
    acc, p = (np.concatenate([np.float32(v), np.zeros(pad, np.float32)]) for v in (acc, p))
    words = list(words) + [0] * pad
    weyl = np.array([unfinalise(w >> 32) for w in words], np.uint32)
    wlo = np.array([unfinalise(w & M32) for w in words], np.uint32)
    out = np.empty_like(acc)
    fail = np.zeros(1, np.int32)
    g = tuple(int(v) for v in _f32_params(fmt, R.STOCHASTIC))
    harness(BINARY32_BITS, nbits)(acc, p, weyl, wlo, out, g, fail)
    for x, y, w, got in zip(acc, p, words, out):
        if not (np.isfinite(x) and np.isfinite(y)):  # IEEE: the sum itself
            assert np.array_equal(got, x + y, equal_nan=True), (float(x), float(y), got)
            continue
        exact = Fraction(float(x)) + Fraction(float(y))
        want = round_frac(exact, fmt, R.STOCHASTIC, w, nbits)
        assert got == float(want) and (got != 0 or np.signbit(got) == np.signbit(x + y)), \
            (nbits, float(x), float(y), w, float(got), float(want))


def threshold_words(x: Fraction, nbits: int, rng) -> list:
    """Random words whose ``R`` (top ``nbits`` bits) lies just below and at the smallest ``R``
    that rounds ``x`` up in binary32 (``R >= 2^N - floor(f 2^N)``), random bits below."""
    a = abs(x)
    if a == 0:
        return [int(rng.integers(0, 1 << 63))] * 2
    u = ulp_at(a, FORMATS["binary32"])
    f = (a - (a // u) * u) / u
    t = (1 << nbits) - math.floor(f * 2**nbits)
    below = int(rng.integers(0, 1 << (64 - nbits))) if nbits < 64 else 0
    return [(min(max(r, 0), (1 << nbits) - 1) << (64 - nbits)) | below for r in (t - 1, t)]


@x86_only
@pytest.mark.parametrize("nbits", [62, 40, 23, 5])
def test_binary32_steps_at_their_thresholds(nbits):
    """Every class of sum (inexact truncations, tiny products of either sign far below the
    unit, cancellations, zeros, binary32's subnormals and its largest value) with the random
    word just below and at the threshold, and with random words."""
    rng = np.random.default_rng(nbits)
    n = 300
    acc = np.float32(rng.standard_normal(n) * 2.0 ** rng.integers(-140, 120, n))
    sig = rng.integers(1, 1 << 22, n) * rng.choice([-1.0, 1.0], n)
    p = np.float32(sig * 2.0 ** (np.floor(np.log2(np.abs(acc) + 2.0**-149))
                                 + rng.integers(-60, 3, n) - 21))
    p[:6] = -acc[:6]
    acc[6:9], p[9] = 0.0, 0.0
    acc[10], p[10] = np.float32(3.4028235e38), np.float32(2.0**103)  # at the largest value
    acc[11], p[11] = np.float32(2.0**-149), np.float32(-2.0**-148)     # subnormals
    acc[12], p[12] = np.float32(2.0**15), np.float32(-2.0**-48)        # E = ulp - 2^-48
    acc[13:16], p[13:16] = [np.inf, -np.inf, np.nan], [1.5, -2.0**-30, 1.0]  # stay as they are
    acc[16], p[16] = np.float32(1.5 * 2.0**126), np.float32(-3 * 2.0**-149)  # |p| / ulp < 2^-250
    accs, ps, words = [], [], []
    for x, y in zip(acc, p):
        finite = np.isfinite(x) and np.isfinite(y)
        for w in threshold_words(Fraction(float(x)) + Fraction(float(y)), nbits, rng) \
                if finite else [(1 << 64) - 1, 0]:
            accs.append(x), ps.append(y), words.append(w)
        accs.append(x), ps.append(y), words.append(int(rng.integers(0, 1 << 63)) * 2 + 1)
    check_binary32_steps(nbits, accs, ps, words)


# ------------------------------------------------------------- whole GEMMs
def fast_taken(monkeypatch) -> list:
    """Record what every ``fast_run`` call returned."""
    seen = []
    real = kernels_gemm_api.fast_run

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(kernels_gemm_api, "fast_run", spy)
    return seen


def fast_equals_generic(monkeypatch, a, b, dp, fast_expected: bool = X86, **kwargs):
    """``gemm(a, b, dp, **kwargs)``, asserting that the fast kernel ran and kept its result
    exactly when ``fast_expected`` (else it declined or handed back), and that the result
    equals the generic kernel's (counters on), signs of zero and NaN included."""
    seen = fast_taken(monkeypatch)
    fast = gemm(a, b, dp, **kwargs)
    assert seen == [fast_expected]
    generic, _ = gemm(a, b, dp, counters=True, **kwargs)
    assert np.array_equal(fast, generic, equal_nan=True)
    assert np.array_equal(np.signbit(fast), np.signbit(generic))
    return fast


#: Operands whose products reach down to 2^-148 (bf16's subnormals) and up to 2^109.
TINY = FloatFormat(name="tiny_e7m2", exponent_bits=7, mantissa_bits=2, bias=73)


# (each distinct pair of mantissa and random bits compiles a kernel of its own: few pairs here)
@pytest.mark.parametrize(("ops", "acc", "nbits", "scale"), [
    ("fp16", "fp16", None, 1.0), ("fp16", "fp16", 13, 1.0), ("fp16", "fp16", None, 2.0**-9),
    ("e4m3fn", "e5m2", None, 1.0), ("e4m3fn", "e4m3fn", None, 4.0),
    ("e5m2", "fp16", None, 2.0**-6), ("fp16", "tf32", None, 1.0), (TINY, "bf16", None, 2.0**-70),
    (TINY, "bf16", None, 2.0**25), ("fp16", "binary32", None, 1.0),
    ("fp16", "binary32", 9, 2.0**-20), ("e5m2", "binary32", 30, 2.0**-6)])
def test_gemm_equals_generic_kernel(monkeypatch, ops, acc, nbits, scale):
    """Fast (spied: it ran and kept its result) against the generic kernel (counters on), with
    C, over the format's subnormal range (operands times ``scale``, C times its square) and
    across thread blocks."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((21, 700)) * scale
    b = rng.standard_normal((700, 19)) * scale
    c = rng.standard_normal((21, 19)) * scale**2
    dp = Datapath(a=ops, b=ops, accumulation=Sequential(format=acc, rounding=R.STOCHASTIC,
                                                        seed=3, random_bits=nbits))
    fast = fast_equals_generic(monkeypatch, a, b, dp, C=c)
    other = gemm(a, b, Datapath(a=ops, b=ops, accumulation=Sequential(
        format=acc, rounding=R.STOCHASTIC, seed=4, random_bits=nbits)), C=c)
    assert not np.array_equal(fast, other)  # the seed matters


def test_gemm_equals_fraction_replay(monkeypatch):
    from lowbit import quantize
    rng = np.random.default_rng(8)
    a = quantize(rng.standard_normal((5, 40)), "fp16")
    b = quantize(rng.standard_normal((40, 9)), "fp16")
    for inner in (Sequential(format="fp16", rounding=R.STOCHASTIC, seed=9),
                  Chunked(chunk=7, inner=Sequential(format="e5m2", rounding=R.STOCHASTIC,
                                                    seed=2),
                          outer=Sequential(format="fp16"))):
        dp = Datapath(a="fp16", b="fp16", accumulation=inner)
        seen = fast_taken(monkeypatch)
        got = gemm(a, b, dp)
        assert seen == [X86]
        for i in range(5):
            for j in range(9):
                assert got[i, j] == float(replay(inner, a, b, None, dp.product, i, j, 9, 40))


def test_stream_index_wraps_inside_a_block():
    """Indices ``e * K + k`` crossing a multiple of 2^32 inside a register block's k-range
    (elements 2 and 4 of a slice of a pretended K near 2^31): the kernel splits the block there
    (``wrap_steps``) and matches the generic kernel."""
    from lowbit import quantize
    rng = np.random.default_rng(1)
    a, b = (np.float32(quantize(rng.standard_normal(s), "fp16")) for s in ((6, 300), (300, 20)))
    seq = Sequential(format="fp16", rounding=R.STOCHASTIC, seed=1)
    ops = (FORMATS["fp16"], FORMATS["fp16"])
    ktot = (1 << 31) - 50
    for k0 in (0, 37):
        fast = run_chunked(a, b, None, None, None, seq, None, None, k0, ktot, ops)
        generic = run_chunked(a, b, None, np.zeros(4, np.int64), None, seq, None, None, k0,
                              ktot, ops)
        assert np.array_equal(fast, generic)
        assert not np.array_equal(fast, run_chunked(a, b, None, None, None, seq, None, None,
                                                    k0 + 1, ktot, ops))


def test_undecidable_lane_hands_back_to_generic(monkeypatch):
    """Sums about 96 binades below an fp16 accumulator's quantum (custom operands whose
    products are that small; the accumulator stays zero): some of the 262144 steps are
    ambiguous (about 32 expected), which sets the fail flag, and the generic kernel's result
    is returned."""
    tiny = TINY
    a = np.full((8, 512), 2.0 ** -60)
    b = np.full((512, 64), 2.0 ** -60) * (1 + np.arange(64) % 4)
    dp = Datapath(a=tiny, b=tiny, accumulation=Sequential(format="fp16",
                                                          rounding=R.STOCHASTIC, seed=0))
    fast_equals_generic(monkeypatch, a, b, dp, fast_expected=False)


def test_promoted_and_scaled_slices_keep_global_indices(monkeypatch):
    """A stochastic inner step inside a promotion or a per-K-block scaling runs on K-slices:
    the fast kernel is given each slice's global k (stream index ``e * K + k``), so it matches
    the generic kernel slice by slice."""
    from lowbit.emulator.datapath import Promoted, Scaling
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((9, 200)), rng.standard_normal((200, 11))
    inner = Sequential(format="fp16", rounding=R.STOCHASTIC, seed=6)
    cases = [(Datapath(a="fp16", b="fp16", accumulation=Promoted(
        interval=48, inner=inner, outer=Sequential(format="binary32"))), {}),
        (Datapath(a="fp16", b="fp16", accumulation=inner, scaling=Scaling(block_k=64)),
         {"scale_a": 2.0 ** rng.integers(-3, 3, (9, 4)), "scale_b": 0.5})]
    for dp, scales in cases:
        seen = fast_taken(monkeypatch)
        fast = gemm(a, b, dp, **scales)
        assert seen and all(v == X86 for v in seen)
        generic, _ = gemm(a, b, dp, counters=True, **scales)
        assert np.array_equal(fast, generic)


def test_overflow_and_special_lanes(monkeypatch):
    """Lanes that overflow fp16 mid-way (the lazy check reruns their block with the full
    step), and NaN and infinite entries of C beside finite ones."""
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((10, 120)), rng.standard_normal((120, 20))
    a[2, 30], a[2, 31] = 250.0, -250.0   # past 65504 at k = 30, back at k = 31 (inf stays)
    b[30, :], b[31, :] = 300.0, 300.0
    c = rng.standard_normal((10, 20))
    c[3, 4], c[7, 11], c[0, 0] = np.nan, np.inf, -np.inf
    dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="fp16",
                                                              rounding=R.STOCHASTIC))
    fast = fast_equals_generic(monkeypatch, a, b, dp, C=c)
    assert gemm(a, b, dp, C=c, counters=True)[1].overflows > 0
    assert np.isinf(fast[2]).all() and np.isfinite(fast[1]).all()

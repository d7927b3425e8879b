"""Double-rounding faults in the fast GEMM kernels, and the speculative steps that avoid them.

A float32 sum ``s = RNE32(acc + a*b)`` can land exactly on a midpoint of the accumulator grid while
the exact sum lies just beside it; rounding ``s`` then picks the wrong neighbour. The fast kernels
either round every sum to odd (by TwoSum, or toward zero with an exactness test:
``test_gemm_rz``) or take the plain float32 sum, flag such lanes
(``kernels_gemm_fast.midpoint_flags``) and replay the span exactly (``exactness_plan``). These
tests build such sums on purpose, so a missing fix or a missing or late replay changes results:
fp16 and bf16 accumulators take the round-toward-zero fix on x86, e5m6 the speculative one.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from numba import njit

import lowbit
from lowbit.emulator.datapath import Chunked, Datapath, Sequential
from lowbit.emulator.gemm import gemm
from lowbit.formats import FORMATS, FloatFormat
from lowbit.formats.reference import round_exact


def _faults(acc_name: str, n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` triples (acc, a, b): acc a value of the accumulator format, a and b fp16 values
    whose exact product puts ``acc + a*b`` within half a float32 unit of the midpoint above
    ``acc``, on the side that round-to-nearest-even of the float32 sum gets wrong."""
    fmt = FORMATS[acc_name]
    m = fmt.mantissa_bits
    out = []
    sig = 1.0 + np.arange(1024) / 1024.0  # every fp16 significand
    while len(out) < n:
        e = int(rng.integers(-2, 6))
        j = int(rng.integers(1, 2 ** m - 1))
        acc = (1.0 + j / 2 ** m) * 2.0 ** e
        half_q = 2.0 ** (e - m - 1)
        ea = int(rng.integers(-4, 3))
        a = sig * 2.0 ** ea
        b = lowbit.quantize(half_q / a, "fp16")
        p = np.array([Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b)])
        d = p - Fraction(half_q)
        ulp = Fraction(2) ** (e - 23)
        # below the midpoint when acc is odd (ties go up), above it when acc is even
        want = (d < 0) if j % 2 else (d > 0)
        ok = [i for i in range(a.size) if want[i] and abs(d[i]) < ulp / 2]
        for i in ok[:3]:
            sign = float(rng.choice([-1.0, 1.0]))
            out.append((sign * acc, sign * a[i], b[i]))
    acc, a, b = (np.array(v[:n]) for v in zip(*out))
    return acc, a, b


def _instances(acc, a, b, k, rng):
    """A, B, C with instance i on the diagonal element (i, i): ``k`` steps, the fault product at
    a random one; before it pairs that add and subtract ``acc`` (exact), after it zeros."""
    n = acc.size
    A, B = np.zeros((n, k)), np.zeros((k, n))
    for i in range(n):
        t = int(rng.integers(0, k))
        for s in range(k):
            if s == t:
                A[i, s], B[s, i] = a[i], b[i]
            elif s % 2 == 0 and s + 1 < t:
                A[i, s], B[s, i], A[i, s + 1], B[s + 1, i] = 1.0, acc[i], -1.0, acc[i]
    return A, B, np.diag(acc)


@pytest.mark.parametrize("acc_name", ["fp16", "bf16", "e5m6"])
@pytest.mark.parametrize("k", [1, 3, 11])
def test_midpoint_faults_are_exact(acc_name, k):
    rng = np.random.default_rng(k * 7 + len(acc_name))
    acc, a, b = _faults(acc_name, 30, rng)
    dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format=acc_name))
    A, B, C = _instances(acc, a, b, k, rng)
    got = gemm(A, B, dp, C=C)
    slow, _ = gemm(A, B, dp, C=C, counters=True)  # the generic kernel
    assert np.array_equal(got, slow, equal_nan=True)
    # the diagonal is acc + a*b rounded once: the float32 sum rounded again would differ
    fmt = FORMATS[acc_name]
    exact = [float(round_exact(Fraction(float(x)) + Fraction(float(y)) * Fraction(float(z)), fmt))
             for x, y, z in zip(acc, a, b)]
    twice = lowbit.quantize((acc.astype(np.float32) + (a * b).astype(np.float32)), acc_name)
    assert np.array_equal(np.diag(got), exact)
    assert not np.array_equal(np.diag(got), twice)


def test_chunked_inner_faults_are_exact():
    rng = np.random.default_rng(4)
    acc, a, b = _faults("fp16", 24, rng)
    A, B, C = _instances(acc, a, b, 13, rng)
    dp = Datapath(a="fp16", b="fp16", accumulation=Chunked(
        chunk=5, inner=Sequential(format="fp16"), outer=Sequential(format="binary32")))
    got = gemm(A, B, dp, C=C)
    slow, _ = gemm(A, B, dp, C=C, counters=True)
    assert np.array_equal(got, slow, equal_nan=True)


@pytest.mark.parametrize("name", ["fp16", "bf16", "e4m3fn", "e5m2", "e5m6", "e7m3_b0"])
def test_midpoint_flags_predicate(name):
    """A span is flagged when a float32 sum is a midpoint of the format's grid (the overflow
    threshold included), and otherwise only for nonzero sums under the smallest normal (checked
    lane by lane against Fractions)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    from lowbit.emulator.kernels_gemm_api import accumulator_kind
    from lowbit.emulator.kernels_gemm_fast import flags0, flags_any, midpoint_flags
    fmt = FORMATS.get(name) or FloatFormat(name=name, exponent_bits=7, mantissa_bits=3, bias=0)
    kind, g = accumulator_kind(Sequential(format=fmt))
    assert kind == {"fp16": 1, "bf16": 5, "e7m3_b0": 2}.get(name, 4)

    @intrinsic
    def flagged(typingctx, x, g):
        def codegen(context, builder, sig, args):
            i32 = ir.IntType(32)
            gv = [builder.trunc(builder.extract_value(args[1], i), i32) for i in range(9)]
            vec = ir.VectorType(ir.FloatType(), 8)
            v = builder.insert_element(ir.Constant(vec, ir.Undefined), args[0],
                                       ir.Constant(i32, 0))
            v = builder.shuffle_vector(v, ir.Constant(vec, ir.Undefined),
                                       ir.Constant(ir.VectorType(i32, 8), [0] * 8))
            fl = midpoint_flags(builder, v, flags0(builder), gv, kind)
            return builder.zext(flags_any(builder, fl, gv, kind), ir.IntType(8))

        return types.uint8(types.float32, g), codegen

    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = flagged(x[i], g)

    rng = np.random.default_rng(2)
    vals = fmt.values()
    vals = vals[np.isfinite(vals) & (vals > 0)]
    mids = (vals[1:] + vals[:-1]) / 2
    top = float(fmt.max) + float(fmt.max - vals[-2]) / 2  # the overflow threshold
    emin, emax = fmt.binary_exponent_range
    exps = rng.integers(max(emin - 30, -149), min(emax + 2, 128), 30000)
    near = rng.uniform(1, 2, 30000) * 2.0 ** exps
    x = np.concatenate([rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
                        .view(np.float32), near.astype(np.float32), vals.astype(np.float32),
                        mids.astype(np.float32), np.float32([top, 0.0])])
    x = x[np.isfinite(x)]
    got = np.empty(x.size, np.uint8)
    run(x, got)
    tiny = float(fmt.min_normal)
    for v, f in zip(x, got):
        mag = abs(float(v))
        if mag == 0 or mag > top:
            continue  # no rounding jump to catch
        fv = Fraction(mag)
        e = fv.numerator.bit_length() - fv.denominator.bit_length()
        e -= int(Fraction(2) ** e > fv)  # floor(log2 |v|)
        q = Fraction(2) ** (max(e, emin) - fmt.mantissa_bits)
        midpoint = (fv / q - Fraction(1, 2)).denominator == 1
        if midpoint:  # every midpoint is caught (soundness)
            assert f, (name, float(v))
        elif f:  # and nothing else but the subnormal range (the replays stay rare)
            assert mag < tiny, (name, float(v))

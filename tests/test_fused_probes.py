"""The block-FMA kernel against the Fasi et al. / HPEC'25 probes and an exact Fraction replay.

Part 1: every row of ``training_hw.md`` 4.2 (the tabulated result for each GPU column that has one;
V100/A100 values are GPU observations, H100/B200 model predictions) through the public presets.
Part 2: an independent pure-Python implementation of the published block-FMA steps, in exact
``Fraction`` arithmetic, compared bit for bit (and event for event) with the kernel on
hypothesis-generated parameters and operands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lowbit import Rounding
from lowbit.formats import get_format
from lowbit.accelerators import tensor_core
from lowbit.emulator.fused import Alignment, FusedAccumulation, InvalidAccumulationError, Pattern
from lowbit.emulator.gemm import gemm

E = 2.0 ** -23
GPUS = ("V100", "A100", "H100", "B200")


def row(name, a, b, c, expected, fmt="fp16", out="binary32", k=16):
    """(name, fmt, out, a, b, c, {gpu: expected}); a and b zero-padded to k."""
    a = list(a) + [0.0] * (k - len(a))
    b = list(b) + [0.0] * (k - len(b))
    if not isinstance(expected, dict):
        expected = dict.fromkeys(GPUS, expected)
    return (name, fmt, out, a, b, c, expected)


def same(value):
    return dict.fromkeys(("A100", "H100", "B200"), value)


ROWS = [
    row("fp16 subnormal input", [2.0**-24], [4.0], 0.0, 2.0**-22),
    row("fp32 subnormal c", [], [], 2.0**-149, 2.0**-149),
    row("products exact", [1 - 2.0**-11] * 4, [1 - 2.0**-11] * 4, 0.0, 4 * (1 - 2.0**-10 + 2.0**-22)),
    row("RZ", [1, 1], [2, E + E / 2], 0.0, 2.0),
    row("RZ negative", [1, 1], [-2, -(E + E / 2)], 0.0, -2.0),
    row("fp16 out is RN", [2.0**-24] * 2, [0.5, 0.25], 0.0, 2.0**-24, out="fp16"),
    row("D1 alignment bits", [1], [1], -(1 - E / 2), {"V100": E, **same(E / 2)}),
    row("D2 no per-add normalisation", [1] * 4, [E / 2] * 4, 1 - E / 2, 1 + E),
    row("D3 subtraction", [1, 1], [1, -E / 2], -1 + E / 2, {"V100": E, **same(0.0)}),
    *[row(f"D4 carry, slot {s}", [1] * 4, [E if i == s else 1 for i in range(4)], 1 + 2 * E + E,
          4 + 4 * E) for s in range(4)],
    row("D4 third carry bit", [1] * 4, [1, 1.5, 1.75, 1.875], 1.875, 8.0),
    row("D4 RZ after carry", [1] * 4, [1] * 4, 1 + 2 * E + E, 5.0),
    row("D5 V100 vector", [1] * 4, [E / 2] * 4, 1 - E / 2, {"V100": 1 + E}),
    row("D5 V100 vector, larger c", [1] * 4, [E / 2] * 4, 1.0, {"V100": 1.0}),
    row("D5 A100 vector", [0.5] * 4, [E / 2] * 3 + [E + E / 2], 1 - E / 2, same(1 + E)),
    row("D5 A100 vector, larger c", [0.5] * 4, [E / 2] * 3 + [E + E / 2], 1.0,
        {"A100": 1.0, "H100": 1 + E, "B200": 1 + E}),
    row("bf16 subnormal in", [2.0**-133], [2.0**7], 0.0, same(2.0**-126), fmt="bf16"),
    row("bf16 subnormal out", [2.0**-126], [0.5], 0.0, same(2.0**-127), fmt="bf16"),
    row("HPEC F1 one extra bit", [E / 2] * 2, [1, 1], 1.0, {"V100": 1.0, **same(1 + E)}),
    row("HPEC F1 two extra bits", [E / 2] * 3, [1, 0.5, 0.5], 1.0,
        {"V100": 1.0, "A100": 1.0, "H100": 1 + E, "B200": 1 + E}),
    row("HPEC F5 final fp32 rounding", [1] * 3, [1] * 3, 1 + E + 2 * E, 4.0),
    row("HPEC F6 fp16-out rounding", [1] * 3, [1] * 3, 1 + 2.0**-10 + 2.0**-9, 4 + 2.0**-8,
        out="fp16"),
    row("FP8 E4M3 accumulator width", [1, 2.0**-7], [1, 2.0**-7], 0.0,
        {"H100": 1.0, "B200": 1 + 2.0**-14}, fmt="e4m3fn", k=32),
    row("FP8 E4M3 13th bit", [1, 2.0**-6], [1, 2.0**-7], 0.0,
        {"H100": 1 + 2.0**-13, "B200": 1 + 2.0**-13}, fmt="e4m3fn", k=32),
]
CASES = [pytest.param(gpu, r, id=f"{r[0]}-{gpu}") for r in ROWS for gpu in GPUS if gpu in r[6]]


def probe(gpu, fmt, out, a, b, c):
    return gemm(np.array([a]), np.array([b]).T, tensor_core(gpu, fmt, out), np.array([[c]]))[0, 0]


@pytest.mark.parametrize("gpu,r", CASES)
def test_fasi_hpec_probe(gpu, r):
    name, fmt, out, a, b, c, expected = r
    got = probe(gpu, fmt, out, a, b, c)
    want = expected[gpu]
    assert got == want and math.copysign(1, got) == math.copysign(1, want), (name, got, want)


@pytest.mark.parametrize("gpu,terms", [("V100", 4), ("A100", 8), ("H100", 16), ("B200", 16)])
@pytest.mark.parametrize("k", range(2, 20))
def test_hpec_f3_block_size_probe(gpu, terms, k):
    # a_0 = 1, a_{k-1} = 2^-23, b = 1 there, c = 1 + 2^-23: 2 + 2^-22 while both products are in
    # one block, 2 once the second falls into the next block (RZ after the first block).
    a = [0.0] * 32
    b = [0.0] * 32
    a[0], a[k - 1], b[0], b[k - 1] = 1.0, E, 1.0, 1.0
    assert probe(gpu, "fp16", "binary32", a, b, 1 + E) == (2 + 2 * E if k <= terms else 2.0)


# ----------------------------------------------------------------- Part 2: exact Fraction replay
def floor_log2(x: Fraction) -> int:
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > x else e


def round_to(v: Fraction, p: int, emin: int, emax: int, rne: bool, subnormals: bool):
    """(value, overflowed, flushed): ``v`` rounded to ``p`` fraction bits in [emin, emax]."""
    if v == 0:
        return 0.0, 0, 0
    neg, m = v < 0, abs(v)
    e = floor_log2(m)
    if e < emin and not subnormals:
        return (-0.0 if neg else 0.0), 0, 1
    q = max(e, emin) - p
    t = m / Fraction(2) ** q
    n = math.floor(t)
    if rne and (t - n > Fraction(1, 2) or (t - n == Fraction(1, 2) and n % 2 == 1)):
        n += 1
    if n == 0:
        return (-0.0 if neg else 0.0), 0, 1
    r = n * Fraction(2) ** q
    if r >= Fraction(2) ** (emax + 1):
        return (-math.inf if neg else math.inf), 1, 0
    return (-float(r) if neg else float(r)), 0, 0


def split(x: Fraction, emin: int, frac: int):
    """(sign, integer significand with ``frac`` fraction bits, exponent) of x != 0."""
    e = max(floor_log2(abs(x)), emin)
    i = abs(x) * Fraction(2) ** (frac - e)
    assert i.denominator == 1
    return (-1 if x < 0 else 1), int(i), e


def align(j: Fraction, mode: Alignment) -> int:
    """An addend ``j`` (non-negative, in units of the aligned lsb) under the alignment mode."""
    n = math.floor(j)
    if mode == Alignment.STICKY:
        return 2 * n + (j != n)
    if mode == Alignment.NEAREST_EVEN and (j - n > Fraction(1, 2) or
                                           (j - n == Fraction(1, 2) and n % 2)):
        return n + 1
    return n


def ref_block(acc: FusedAccumulation, pairs, c: float, events):
    """One block FMA as published (steps 2-9 of training_hw.md 4.1), in exact arithmetic."""
    if not math.isfinite(c):
        return c
    fa, fb = acc.operand_formats
    terms = []  # (sign, I with 23 fraction bits, exponent, is a product)
    for a, b in pairs:
        if a == 0 or b == 0:
            continue
        sa, ia, ea = split(Fraction(a), fa.binary_exponent_range[0], fa.mantissa_bits)
        sb, ib, eb = split(Fraction(b), fb.binary_exponent_range[0], fb.mantissa_bits)
        i = Fraction(ia * ib, 2 ** (fa.mantissa_bits + fb.mantissa_bits)) * 2 ** 23
        terms.append((sa * sb, i, ea + eb, True))
    if c != 0:
        terms.append((*split(Fraction(c), -126, 23), False))
    if not terms:
        return 0.0
    top = max(t[2] for t in terms)
    if acc.min_exponent is not None:
        top = max(top, acc.min_exponent)
    total = 0
    for sign, i, e, product in terms:
        j = math.floor(i * Fraction(2) ** acc.extra_bits)  # extra alignment bits, truncated
        a = align(Fraction(j) / Fraction(2) ** (top - e), acc.alignment)
        events["lost"] += product and a == 0
        total += sign * a
    frac = acc.width + (acc.alignment == Alignment.STICKY)
    if acc.carry_bits is not None and abs(total) >= 2 ** (frac + 1 + acc.carry_bits):
        events["over"] += 1
        total = (1 if total > 0 else -1) * (abs(total) % 2 ** (frac + 1 + acc.carry_bits))
    return finish(acc, Fraction(total) * Fraction(2) ** (top - frac),
                  acc.rounding == Rounding.NEAREST_EVEN, events)


def finish(acc, v, rne, events):
    emin, emax = acc.output.binary_exponent_range
    r, o, f = round_to(v, acc.precision, emin, emax, rne, acc.output_subnormals)
    events["over"] += o
    events["flush"] += f
    return r


def ref_dot(acc: FusedAccumulation, a, b, c: float, events) -> float:
    fa, fb = acc.operand_formats
    if not acc.input_subnormals:
        a = [0.0 if abs(x) < fa.min_normal else x for x in a]
        b = [0.0 if abs(x) < fb.min_normal else x for x in b]
    pairs = list(zip(a, b))
    emin, emax = acc.output.binary_exponent_range
    d = round_to(Fraction(c), acc.output.mantissa_bits, emin, emax, True, True)[0]
    if acc.pattern == Pattern.CONTIGUOUS:
        for k0 in range(0, len(pairs), acc.terms):
            d = ref_block(acc, pairs[k0:k0 + acc.terms], d, events)
        return d
    pairs += [(0.0, 0.0)] * (-len(pairs) % acc.terms)
    for k0 in range(0, len(pairs), acc.terms):
        if not math.isfinite(d):
            break  # the result is decided; later blocks add no events
        block = pairs[k0:k0 + acc.terms]
        d1 = ref_block(acc, [p for i, p in enumerate(block) if i % 4 < 2], 0.0, events)
        d2 = ref_block(acc, [p for i, p in enumerate(block) if i % 4 >= 2], d1, events)
        d = finish(acc, Fraction(d2) + Fraction(d), True, events) if math.isfinite(d2) else d2
    return d


INPUTS = ("fp16", "bf16", "tf32", "e4m3fn", "e5m2")


@dataclass(frozen=True)
class Case:
    acc: FusedAccumulation
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


def values_of(fmt) -> np.ndarray:
    if fmt.bits <= 16:
        return fmt.values()
    bits = np.random.default_rng(1).integers(0, 1 << 32, 20000, dtype=np.uint64).astype(np.uint32)
    bits = bits[(bits >> 23) & 0xFF != 0xFF]  # no inf/NaN
    if fmt.name == "tf32":
        bits = bits & np.uint32(0xFFFFE000)
    return np.unique(bits.view(np.float32).astype(np.float64))


VALUES = {name: values_of(get_format(name)) for name in INPUTS + ("binary32",)}


@st.composite
def operands(draw, fmt: str, n: int):
    """n values of fmt: edges (0, +-max, +-smallest subnormal), a narrow window near 1, anything."""
    vals = VALUES[fmt]
    f = get_format(fmt)
    edge = [0.0, float(f.max), -float(f.max), float(f.min_positive), -float(f.min_positive)]
    near = vals[(np.abs(vals) >= 0.125) & (np.abs(vals) <= 8)]
    one = st.one_of(st.sampled_from(edge), st.sampled_from(near), st.sampled_from(near),
                    st.sampled_from(vals))
    return np.array(draw(st.lists(one, min_size=n, max_size=n)), dtype=np.float64)


@st.composite
def cases(draw):
    terms = draw(st.integers(1, 20))
    pattern = draw(st.sampled_from(Pattern))
    if pattern == Pattern.INTERLEAVED:
        terms = 4 * (terms // 4 + 1)
    fa, fb = draw(st.sampled_from(INPUTS)), draw(st.sampled_from(INPUTS))
    acc = FusedAccumulation(
        terms=terms, extra_bits=draw(st.integers(-12, 4)),
        output=draw(st.sampled_from(["binary32", "fp16"])),
        rounding=draw(st.sampled_from([Rounding.TOWARD_ZERO, Rounding.NEAREST_EVEN])),
        alignment=draw(st.sampled_from(Alignment)),
        carry_bits=draw(st.one_of(st.none(), st.none(), st.integers(1, 6))),
        min_exponent=draw(st.one_of(st.none(), st.integers(-150, 10))),
        input_subnormals=draw(st.booleans()), output_subnormals=draw(st.booleans()),
        pattern=pattern, a_format=fa, b_format=fb)
    m, n, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 40))
    a = draw(operands(fa, m * k)).reshape(m, k)
    b = draw(operands(fb, k * n)).reshape(k, n)
    if draw(st.booleans()) and k >= 2:  # exact cancellation: the second half undoes the first
        h = k // 2
        a[:, h:2 * h] = a[:, :h]
        b[h:2 * h] = -b[:h]
    out = acc.output.name if acc.output.name == "fp16" else "binary32"
    c = draw(operands(out, m * n)).reshape(m, n)
    return Case(acc, a, b, c)


def make_case(a, b, c, **fields) -> Case:
    fields.setdefault("a_format", "fp16")
    fields.setdefault("b_format", fields["a_format"])
    acc = FusedAccumulation(**{"extra_bits": 0, "output": "binary32",
                               "rounding": Rounding.TOWARD_ZERO, **fields})
    return Case(acc, np.array([a], float), np.array([b], float).T, np.array([[c]], float))


@settings(max_examples=150, deadline=None)
@given(case=cases())
@example(case=make_case([1.0], [1.0], -(1 - E / 2), terms=4))  # D1
@example(case=make_case([65504.0] * 4, [65504.0] * 4, 65504.0, terms=2, output="fp16",
                        rounding=Rounding.NEAREST_EVEN))  # overflow to inf, then stays inf
@example(case=make_case([2.0**-24, -2.0**-24], [2.0**-24, 2.0**-24], 0.0, terms=2,
                        output_subnormals=False))  # underflow, exact zero sum
@example(case=make_case([448.0] * 32, [-448.0] * 16 + [448.0] * 16, 1.5, terms=32,
                        extra_bits=2, a_format="e4m3fn", pattern=Pattern.INTERLEAVED))
@example(case=make_case([1.0, 2.0**-6], [1.0, 2.0**-7], 0.0, terms=32, extra_bits=-10,
                        a_format="e4m3fn"))  # the 13th bit (H100 FP8)
@example(case=make_case([1.0] * 4, [1, 1.5, 1.75, 1.875], 1.875, terms=4, carry_bits=1,
                        alignment=Alignment.STICKY))  # carry bits dropped
@example(case=make_case([-8.0], [-8.0], float(np.float32(-3.37074968e+38)), terms=4, extra_bits=-1,
                        pattern=Pattern.INTERLEAVED))  # the final add rounds once, not twice
def test_kernel_matches_exact_fraction_replay(case):
    counters = np.zeros(4, dtype=np.int64)
    got = case.acc.run(case.a, case.b, case.c, counters)
    events = {"over": 0, "flush": 0, "lost": 0}
    want = np.array([[ref_dot(case.acc, list(case.a[i]), list(case.b[:, j]), case.c[i, j], events)
                      for j in range(case.b.shape[1])] for i in range(case.a.shape[0])])
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), (got, want)
    assert counters.tolist() == [events["over"], 0, events["flush"], events["lost"]]


@pytest.mark.parametrize("a,b,c,want", [
    ([np.nan, 1], [1, 1], 0.0, np.nan), ([np.inf, 1], [1, 1], 0.0, np.inf),
    ([np.inf, np.inf], [1, -1], 0.0, np.nan), ([np.inf, 0], [0, 1], 0.0, np.nan),
    ([1, 1], [1, 1], -np.inf, -np.inf), ([-np.inf, 1], [1, 1], np.inf, np.nan),
    ([-np.inf, 0], [1, 0], 5.0, -np.inf)])
def test_specials_are_decided_over_the_whole_dot_product(a, b, c, want):
    acc = make_case([0.0], [0.0], 0.0, terms=1, a_format="binary32").acc
    a, b = a + [2.0] * 3, b + [3.0] * 3  # specials in the first block, finite blocks after
    got = acc.run(np.array([a]), np.array([b]).T, np.array([[c]]))[0, 0]
    assert got == want or (np.isnan(want) and np.isnan(got))


@pytest.mark.parametrize("fields,message", [
    ({"terms": 0}, "terms"), ({"extra_bits": 30}, "extra_bits"), ({"carry_bits": -1}, "carry_bits"),
    ({"rounding": Rounding.STOCHASTIC}, "TOWARD_ZERO"), ({"output": "fp4_r4"}, "radix-2"),
    ({"output": "e4m3fn"}, "infinities"), ({"terms": 6, "pattern": Pattern.INTERLEAVED}, "multiple"),
    ({"a_format": "binary64"}, "binary32"), ({"terms": 1 << 20, "extra_bits": 24}, "53")])
def test_contradictory_records_are_refused(fields, message):
    base = {"terms": 4, "extra_bits": 0, "output": "binary32", "rounding": Rounding.TOWARD_ZERO}
    with pytest.raises((InvalidAccumulationError, TypeError), match=message):
        FusedAccumulation(**{**base, **fields})


def test_operands_outside_their_format_are_refused_naming_the_element():
    acc = make_case([0.0], [0.0], 0.0, terms=4).acc
    with pytest.raises(ValueError, match=r"b\[1, 0\] = .*fp16"):
        acc.run(np.ones((1, 2)), np.array([[1.0], [1.0 + 2.0**-12]]))

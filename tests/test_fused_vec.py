"""The vectorised tensor-core kernel (column strips of 256, row tiles of 8) against the scalar
reference kernel, bit for bit on values and on event counts, on shapes that cross strip and tile
edges and hold specials. (The GPU data and probe tests use small shapes only.)"""

import itertools
from dataclasses import replace

import numpy as np
import pytest

import lowbit.emulator.fused as F
from lowbit import Rounding
from lowbit.accelerators.tensor_cores import PRESETS
from lowbit.emulator import kernels_fused as K
from lowbit.emulator.quantize import quantize


def _reference(acc, A, B, C):
    """The scalar kernel (kernels_fused.gemm_fused_serial) on the same prepared operands."""
    a, b, c = F._matrices(A, B, C)
    c = acc._entry_accumulator(c)
    if acc.pattern == F.Pattern.INTERLEAVED:
        a, b = F._interleave(a, b, acc.terms)
    fa, fb = acc.operand_formats
    shift = acc.width - fa.mantissa_bits - fb.mantissa_bits
    va, sa, ea, fla = acc._split(a, fa, max(shift, 0), "a", transposed=False)
    bt = np.ascontiguousarray(b.T)
    vb, sb, eb, flb = acc._split(bt, fb, 0, "b", transposed=True)
    out = np.empty(c.shape)
    events = K.gemm_fused_serial(va, sa, ea, vb, sb, eb, a, bt, c, fla, flb, acc.kernel_params(),
                                 out)
    return out, tuple(int(e) for e in events)


def _data(rng, fmt, shape, spread):
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-spread, spread + 1, shape)
    x[rng.random(shape) < 0.1] = 0.0
    return np.asarray(quantize(x, fmt), dtype=np.float64)


def _same(x, y):
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    return np.array_equal(nan_x, nan_y) and np.array_equal(
        np.where(nan_x, 0, x).view(np.int64), np.where(nan_y, 0, y).view(np.int64))


def _check(acc, A, B, C):
    want, want_events = _reference(acc, A, B, C)
    counters = np.zeros(4, dtype=np.int64)
    got = acc.run(A, B, C, counters)
    assert _same(got, want)
    assert (int(counters[0]), int(counters[2]), int(counters[3])) == want_events
    assert _same(acc.run(A, B, C), got)  # the counter-free loop gives the same values


@pytest.mark.parametrize("name", sorted(PRESETS), ids="-".join)
def test_presets_across_strips_match_the_scalar_kernel(name):
    preset = PRESETS[name]
    rng = np.random.default_rng(sum(map(ord, "".join(name))))
    checked = 0
    for out_fmt, sub, spread in itertools.product(["binary32", "fp16"], [True, False], [2, 12]):
        try:
            acc = replace(preset.accumulation(out_fmt), output_subnormals=sub)
        except ValueError:  # this chip has no such output path
            continue
        fmt = preset.input_format
        m, k, n = 9, int(rng.integers(1, 90)), int(rng.integers(257, 520))
        A, B = _data(rng, fmt, (m, k), spread), _data(rng, fmt, (k, n), spread)
        C = np.asarray(quantize(rng.standard_normal((m, n)) * 2.0 ** rng.integers(-30, 30, (m, n)),
                                out_fmt), dtype=np.float64)
        C[rng.random(C.shape) < 0.2] = 0.0
        A[0, rng.integers(k)] = [np.inf, -np.inf, np.nan][rng.integers(3)]
        B[rng.integers(k), rng.integers(n)] = [np.inf, -np.inf, np.nan][rng.integers(3)]
        _check(acc, A, B, C)
        checked += 1
    assert checked >= 4  # binary32 output exists for every preset


@pytest.mark.parametrize("seed", range(3))
def test_random_configurations_match_the_scalar_kernel(seed):
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 25:
        fmt = ["fp16", "bf16", "e4m3fn", "e5m2", "tf32", "binary32", "e2m1fn"][rng.integers(7)]
        pattern = F.Pattern(int(rng.integers(2)))
        try:
            acc = F.FusedAccumulation(
                terms=int(rng.integers(1, 9)) * (4 if pattern else 1),
                extra_bits=int(rng.integers(-12, 8)),
                output=["binary32", "fp16", "bf16"][rng.integers(3)],
                rounding=[Rounding.TOWARD_ZERO, Rounding.NEAREST_EVEN][rng.integers(2)],
                min_exponent=[None, int(rng.integers(-140, -10))][rng.integers(2)],
                input_subnormals=bool(rng.integers(2)), output_subnormals=bool(rng.integers(2)),
                pattern=pattern, a_format=fmt, b_format=fmt)
        except ValueError:  # a contradictory random record: rejected, as it should be
            continue
        spread = int(rng.integers(0, 20))
        m, k, n = int(rng.integers(1, 10)), int(rng.integers(1, 70)), int(rng.integers(1, 300))
        A, B = _data(rng, fmt, (m, k), spread), _data(rng, fmt, (k, n), spread)
        C = np.asarray(quantize(rng.standard_normal((m, n)) * 2.0 ** rng.integers(-40, 40, (m, n)),
                                acc.output), dtype=np.float64)
        C[rng.random(C.shape) < 0.2] = 0.0
        _check(acc, A, B, C)
        checked += 1


@pytest.mark.parametrize("rounding", [Rounding.TOWARD_ZERO, Rounding.NEAREST_EVEN])
@pytest.mark.parametrize("scale", [-75, -70, -64, 0, 63])
def test_binary32_output_at_its_subnormals_and_overflow(rounding, scale):
    """The binary32-output rounding of the counter-free loop (``round_binary32``: float32
    conversion, or cleared low bits and truncation below 2^-126) against the scalar kernel and
    the counted loop, with sums around binary32's smallest normal, in its subnormals, and past
    its largest value (blocks of 4 and 8 terms, RZ and RNE)."""
    rng = np.random.default_rng(scale + 200)
    for terms in (4, 8):
        acc = F.FusedAccumulation(terms=terms, extra_bits=2, output="binary32", rounding=rounding,
                                  a_format="binary32", b_format="binary32")
        m, k, n = 5, 37, 300
        A = _data(rng, "binary32", (m, k), 3) * 2.0**scale
        B = _data(rng, "binary32", (k, n), 3) * 2.0**scale
        C = np.asarray(quantize(rng.standard_normal((m, n)) * 2.0 ** (2 * scale), "binary32"),
                       dtype=np.float64)
        # row 0, columns 0-2: one block each, whose sums are 2^128 (infinite), 2^-127 and
        # 1.5 * 2^-127 + 2^-150 (binary32's subnormal grid drops the 2^-150)
        A[0], B[:terms, :3], C[0, :3] = 0.0, 0.0, 0.0
        A[0, 0], B[0, 0] = 2.0**64, 2.0**64
        A[0, 1], B[1, 1], B[1, 2] = 2.0**-75, 2.0**-52, 1.5 * 2.0**-52
        A[0, 2], B[2, 2] = 2.0**-75, 2.0**-75
        B[:, 3], C[0, 3] = -1.0, -0.0  # column 3: -0 + 0 * -1 + ...: every term -0
        B[:3, 3] = -0.0
        _check(acc, A, B, C)
        got = acc.run(A, B, C)
        assert np.isinf(got[0, 0]) and got[0, 1] == 2.0**-127
        assert got[0, 2] == 1.5 * 2.0**-127  # (nearest-even: a tie, kept by the even side)
        assert got[0, 3] == 0.0 and not np.signbit(got[0, 3])  # an exact zero sum is +0
        if scale == -75:  # (products near 2^-150: subnormal and zero results occur)
            assert np.any((got != 0) & (np.abs(got) < 2.0**-126))
        if scale == 63:
            assert np.isinf(got).any()


@pytest.mark.parametrize("name", sorted(PRESETS), ids="-".join)
def test_few_columns_run_transposed_with_the_same_results(name):
    """Outputs with few columns (``N < 128``, ``M >= 2N``) run as ``c^T = b^T a^T``: values and
    event counts equal the scalar kernel's, with NaN and infinities in rows, columns and C."""
    preset = PRESETS[name]
    rng = np.random.default_rng(sum(map(ord, "".join(name))) + 1)
    acc = preset.accumulation("binary32")
    fmt = preset.input_format
    for m, k, n in [(40, 70, 1), (57, 33, 10), (300, 64, 20)]:
        assert F._transpose_pays(m, n)
        A, B = _data(rng, fmt, (m, k), 12), _data(rng, fmt, (k, n), 12)
        C = np.asarray(quantize(rng.standard_normal((m, n)) * 2.0 ** rng.integers(-30, 30, (m, n)),
                                "binary32"), dtype=np.float64)
        A[3, rng.integers(k)] = [np.inf, -np.inf, np.nan][rng.integers(3)]
        B[rng.integers(k), n - 1] = [np.inf, -np.inf, np.nan][rng.integers(3)]
        C[m - 1, 0] = np.inf
        _check(acc, A, B, C)


def test_transposed_run_keeps_mixed_operand_formats_apart():
    """e4m3fn A and e5m2 B (the formats trade places in ``b^T a^T``): against the scalar kernel,
    and a value of neither format is still reported at its place in ``b``."""
    acc = F.FusedAccumulation(terms=16, extra_bits=-10, output="binary32",
                              rounding=Rounding.TOWARD_ZERO, a_format="e4m3fn", b_format="e5m2")
    rng = np.random.default_rng(8)
    A, B = _data(rng, "e4m3fn", (64, 40), 6), _data(rng, "e5m2", (40, 6), 6)
    B[5, 2] = 49152.0  # an e5m2 value e4m3fn cannot hold: right only in b's format
    assert F._transpose_pays(64, 6)
    _check(acc, A, B, np.zeros((64, 6)))
    B[7, 3] = 1.0 + 2.0**-5  # no value of e5m2
    with pytest.raises(ValueError, match=r"b\[7, 3\]"):
        acc.run(A, B)

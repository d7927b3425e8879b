"""Every scalar format x every rounding mode against an oracle written here, independently of both
the kernels and ``lowbit.formats.reference``.

The oracle restates the documented semantics over the format's *table of values* (bisect), for
formats of at most 16 bits; for the wider IEEE formats it rounds an integer significand. The
same inputs then go through ``lowbit.quantize`` (float32 and float64 inputs) and
``reference.round_exact``; any difference is reported with the input, the mode and both results.
"""

from __future__ import annotations

import bisect
import math
import random
import zlib
from fractions import Fraction

import numpy as np
import pytest

import lowbit
from lowbit import FORMATS, BinaryFormat, FloatFormat, IntFormat, IntOverflow, Overflow, Rounding
from lowbit.formats import Specials, round_exact
from lowbit.testing.oracles import mismatches

SEED = 2024
NONE, FN, IEEE = Specials.NONE, Specials.FN, Specials.IEEE

CUSTOM = [
    FloatFormat(name="e3m2_flushed", exponent_bits=3, mantissa_bits=2, bias=3, specials=NONE,
                subnormals=False),
    FloatFormat(name="e4m3_flushed_fn", exponent_bits=4, mantissa_bits=3, bias=7, specials=FN,
                subnormals=False),
    FloatFormat(name="e3m2_nozero_signed", exponent_bits=3, mantissa_bits=2, bias=3,
                specials=NONE, zero=False, subnormals=False),
    FloatFormat(name="ue5m2_ieee", exponent_bits=5, mantissa_bits=2, bias=15, signed=False),
    FloatFormat(name="ue3m2_sat", exponent_bits=3, mantissa_bits=2, bias=3, signed=False,
                specials=NONE),
    FloatFormat(name="e3m0_fn", exponent_bits=3, mantissa_bits=0, bias=3, specials=FN),
    FloatFormat(name="e5m2_sat", exponent_bits=5, mantissa_bits=2, bias=15,
                overflow=Overflow.SATURATE),
    FloatFormat(name="e5m2_keepinf", exponent_bits=5, mantissa_bits=2, bias=15,
                overflow=Overflow.SATURATE_KEEP_INF),
    # float32's exponent range (float64 input reaches them through float32, clamped to +-max)
    FloatFormat(name="e8m7_sat", exponent_bits=8, mantissa_bits=7, bias=127,
                overflow=Overflow.SATURATE),
    FloatFormat(name="e8m10_keepinf", exponent_bits=8, mantissa_bits=10, bias=127,
                overflow=Overflow.SATURATE_KEEP_INF),
    FloatFormat(name="r4_e2m1", exponent_bits=2, mantissa_bits=1, bias=1, radix=4, specials=NONE),
    FloatFormat(name="r4_e3m2_fn_shift", exponent_bits=3, mantissa_bits=2, bias=3, radix=4,
                exponent_shift=1, specials=FN),
    FloatFormat(name="r4_e3m0_fn", exponent_bits=3, mantissa_bits=0, bias=3, radix=4, specials=FN),
    FloatFormat(name="r4_e2m0_nozero", exponent_bits=2, mantissa_bits=0, bias=1, radix=4,
                specials=NONE, zero=False, subnormals=False),
    FloatFormat(name="r4_ue3m1_sat", exponent_bits=3, mantissa_bits=1, bias=3, radix=4,
                signed=False, specials=NONE),
    IntFormat(name="q3.3", bits=6, fraction_bits=3),
    IntFormat(name="int5_sym", bits=5, symmetric=True),
    IntFormat(name="int4_wrap", bits=4, overflow=IntOverflow.WRAP),
    IntFormat(name="int4_step4", bits=4, fraction_bits=-2),
    IntFormat(name="uint3_wrap_frac", bits=3, signed=False, fraction_bits=-1,
              overflow=IntOverflow.WRAP),
]


def _random_custom(n: int) -> list[FloatFormat]:
    """A few random valid custom formats (fixed seed), radix 2 and radix 4 with mantissa bits."""
    rng, out = random.Random(7), []
    while len(out) < n:
        radix = 4 if len(out) % 2 else 2
        kw = dict(exponent_bits=rng.randint(2, 4), mantissa_bits=rng.randint(1, 3), radix=radix,
                  bias=rng.randint(-2, 6), specials=rng.choice(list(Specials)),
                  signed=rng.random() < 0.8)
        try:
            fmt = FloatFormat(name=f"rand{len(out)}", **kw)
        except lowbit.InvalidFormatError:
            continue
        out.append(fmt)
    return out


BY_NAME = {f.name: f for f in CUSTOM}
SCALAR = [f for f in (FORMATS[n] for n in FORMATS) if not isinstance(f, lowbit.BlockFormat)]
ALL = SCALAR + CUSTOM + _random_custom(4)
MODES = [m for m in Rounding if m != Rounding.STOCHASTIC]


# ------------------------------------------------------------------------------------- oracle
class Table:
    """The format's non-negative magnitudes (floats, exact), the parity of each one's integer
    significand, and the next point of the grid above max (the code after max read as finite)."""

    def __init__(self, fmt: FloatFormat):
        m, ebits = fmt.mantissa_bits, fmt.exponent_bits
        c = np.arange(1 << (ebits + m))
        e, f = c >> m, c & ((1 << m) - 1)
        log2r = 1 if fmt.radix == 2 else 2
        sub = (e == 0) & fmt.zero  # the spec's formula, section 1.1, read code by code
        sig = np.where(sub, f * fmt.subnormals, f + (1 << m)).astype(np.float64)
        ex = log2r * (np.where(sub, 1, e) - fmt.bias) + fmt.exponent_shift - m
        vals = np.ldexp(sig, ex)
        keep = np.ones(c.size, bool)
        if fmt.specials == IEEE:
            keep &= e != (1 << ebits) - 1
        elif fmt.specials == FN:
            keep &= c != c[-1]
        self.mags, first = np.unique(vals[keep], return_index=True)
        codes = c[keep][first]
        self.odd = [v != 0 and (m == 0 or k % 2 == 1) for v, k in zip(self.mags, codes)]
        self.mags = self.mags.tolist()
        m, code = fmt.mantissa_bits, fmt.max_magnitude_code + 1
        e, f = divmod(code, 1 << m)
        self.beyond = float((1 + Fraction(f, 1 << m)) * Fraction(fmt.radix) ** (e - fmt.bias)
                            * 2 ** fmt.exponent_shift)


def away(mode, a, lo, hi, lo_odd: bool, neg: bool, r, n) -> bool:
    """Restates P3109 RoundAway from the position of a in [lo, hi) (floats, or Fractions)."""
    if a == lo or mode == Rounding.TOWARD_ZERO:
        return False
    if mode in (Rounding.UP, Rounding.DOWN):
        return neg == (mode == Rounding.DOWN)
    if mode == Rounding.TO_ODD:
        return not lo_odd
    if mode == Rounding.STOCHASTIC:
        nu = (Fraction(a) - Fraction(lo)) / (Fraction(hi) - Fraction(lo))
        return math.floor(nu * 2**n) + r >= 2**n
    mid = (Fraction(lo) + Fraction(hi)) / 2 if isinstance(lo, Fraction) else (lo + hi) / 2
    return a > mid or (a == mid and (lo_odd or mode == Rounding.NEAREST_AWAY))


def wide_neighbours(a: Fraction, fmt: FloatFormat):
    """Integer-significand neighbours for IEEE formats wider than 16 bits."""
    emin = 1 - fmt.bias
    m, e = fmt.mantissa_bits, math.frexp(float(a))[1] - 1
    if Fraction(2) ** e > a:  # float(a) rounded up into the next binade
        e -= 1
    unit = Fraction(2) ** (max(e, emin) - m)
    s = math.floor(a / unit)
    return s * unit, (s + 1) * unit, s % 2 == 1


def oracle(x: float, fmt, mode, r=None, n=62) -> float:
    """The documented result of rounding x (a float) to fmt, as a float64."""
    if math.isnan(x):
        return math.nan
    if isinstance(fmt, BinaryFormat):
        if mode == Rounding.NEAREST_EVEN:
            return 1.0 if x >= 0 else -1.0
        p = min(max((Fraction(x) + 1) / 2, Fraction(0)), Fraction(1)) if math.isfinite(x) else \
            Fraction(int(x > 0))
        return 1.0 if r < p * 2 ** n else -1.0
    neg = math.copysign(1.0, x) < 0
    if isinstance(fmt, IntFormat):
        return int_oracle(x, fmt, mode, neg, r, n)
    over = math.isinf(x)
    toward_zero = mode == Rounding.TOWARD_ZERO or mode == (Rounding.DOWN if not neg else Rounding.UP)
    if not over:
        a = abs(Fraction(x))
        if a == 0 and not fmt.zero:  # no zero: NaN, or +-min by the sign (sign-symmetric)
            return math.nan if fmt.has_nan else math.copysign(float(fmt.min_normal), x)
        mag = float_magnitude(a, fmt, mode, neg, r, n)
        over = mag > fmt.max
    if over:
        policy = fmt.overflow
        if policy == Overflow.SATURATE or (not math.isinf(x) and (
                policy == Overflow.SATURATE_KEEP_INF or toward_zero)):
            mag = fmt.max
        elif policy == Overflow.NAN:
            return math.nan
        else:
            mag = math.inf
    return signed_result(float(mag), neg, fmt)


def float_magnitude(a: Fraction, fmt: FloatFormat, mode, neg, r, n):
    """|result| before the overflow and sign rules."""
    if fmt.bits > 16:
        if a == 0:
            return Fraction(0)
        lo, hi, odd = wide_neighbours(a, fmt)
        return hi if away(mode, a, lo, hi, odd, neg, r, n) else lo
    t, a = _table(fmt), float(a)  # a is a float input: exact
    if a < t.mags[0]:
        return Fraction(t.mags[0])
    if a >= t.beyond:
        return Fraction(t.beyond)
    i = bisect.bisect_right(t.mags, a) - 1
    lo, hi = t.mags[i], (t.mags[i + 1] if i + 1 < len(t.mags) else t.beyond)
    return Fraction(hi if away(mode, a, lo, hi, t.odd[i], neg, r, n) else lo)


def signed_result(mag: float, neg: bool, fmt: FloatFormat) -> float:
    if mag == 0:
        return -0.0 if (neg and fmt.negative_zero) else 0.0
    if neg and not fmt.signed:  # negative result in an unsigned format
        floor = 0.0 if fmt.zero else float(fmt.min_normal)
        return floor if (fmt.overflow == Overflow.SATURATE or not fmt.has_nan) else math.nan
    return -mag if neg else mag


def int_oracle(x: float, fmt: IntFormat, mode, neg, r, n) -> float:
    if math.isinf(x):
        return math.nan if fmt.overflow == IntOverflow.WRAP else float(fmt.max if x > 0 else fmt.min)
    a = abs(Fraction(x)) / fmt.step
    lo = math.floor(a)
    q = lo + away(mode, a, Fraction(lo), Fraction(lo + 1), lo % 2 == 1, neg, r, n)
    q = -q if neg else q
    if fmt.overflow == IntOverflow.WRAP:
        q = (q - fmt.qmin) % (1 << fmt.bits) + fmt.qmin
    q = min(max(q, fmt.qmin), fmt.qmax)
    return float(q * fmt.step)


_TABLES: dict = {}


def _table(fmt) -> Table:
    if fmt not in _TABLES:
        _TABLES[fmt] = Table(fmt)
    return _TABLES[fmt]


# ------------------------------------------------------------------------------------- inputs
def inputs(fmt, count: int = 300) -> np.ndarray:
    """Values, midpoints, quarter points and the floats beside them, specials, past overflow."""
    rng = np.random.default_rng(zlib.crc32(fmt.name.encode()))
    if fmt.bits > 8:
        count = min(count, 100)
    if fmt.bits <= 16:
        mags = np.array(_table(fmt).mags) if isinstance(fmt, FloatFormat) else fmt.values()
        vals = np.unique(np.concatenate([mags, -mags]))
    else:
        vals = np.sort(rng.standard_normal(count) * 2.0 ** rng.integers(-30, 30, count))
        vals = np.concatenate([vals, [float(fmt.max), float(fmt.min_positive)]])
    if vals.size > count:
        vals = np.sort(rng.choice(vals, count, replace=False))
    mids = (vals[:-1] + vals[1:]) / 2
    quarter = vals[:-1] + (vals[1:] - vals[:-1]) / 4
    near = np.concatenate([np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    top = float(fmt.max)
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, top * 1.0625, top * 1.5, top * 4, 1e300, 1e-300,
             float(fmt.min_positive) / 2, float(fmt.min_positive) * 0.75,
             5e-324, 1.5e-323, 2.2250738585072014e-308]  # float64 subnormals, smallest normal
    x = np.concatenate([vals, mids, quarter, near, edges, -np.array(edges[5:])])
    return x


def _oracle_array(x, fmt, mode, rs=None, n=62):
    return np.array([oracle(float(v), fmt, mode, None if rs is None else int(rs[i]), n)
                     for i, v in enumerate(x)])


def _check(actual, expected, x, label):
    bad = mismatches(actual, expected)
    if bad.size:
        i = bad[:6]
        pytest.fail(f"{label}: {bad.size}/{x.size} differ; x={x.reshape(-1)[i].tolist()} got="
                    f"{np.asarray(actual, np.float64).reshape(-1)[i].tolist()} expected="
                    f"{np.asarray(expected).reshape(-1)[i].tolist()}")


def _modes(fmt):
    return [Rounding.NEAREST_EVEN] if isinstance(fmt, BinaryFormat) else MODES


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_kernels_and_reference_match_oracle(fmt):
    x64 = inputs(fmt)
    with np.errstate(over="ignore"):
        x32 = x64.astype(np.float32)
    for mode in _modes(fmt):
        want64 = _oracle_array(x64, fmt, mode)
        _check(lowbit.quantize(x64, fmt, mode), want64, x64, f"quantize float64 {mode.name}")
        want32 = _oracle_array(x32, fmt, mode)
        _check(lowbit.quantize(x32, fmt, mode), want32, x32, f"quantize float32 {mode.name}")
        got_ref = [float(round_exact(float(v), fmt, mode)) for v in x64]
        _check(np.array(got_ref), want64, x64, f"reference {mode.name}")


@pytest.mark.parametrize("fmt", [f for f in ALL if isinstance(f, FloatFormat) and f.radix == 2],
                         ids=lambda f: f.name)
def test_float64_kernel_matches_oracle(fmt):
    """The float64 kernel itself in every deterministic mode (``quantize`` sends most formats
    to the float32 kernels instead)."""
    from lowbit.emulator.kernels_float import quantize_float
    x = inputs(fmt)
    for mode in MODES:
        got = np.empty_like(x)
        quantize_float(x, got, fmt.kernel_params, float(fmt.max), float(fmt.min_normal),
                       int(mode), np.uint64(0), 0, 62)
        _check(got, _oracle_array(x, fmt, mode), x, f"quantize_float {mode.name}")


@pytest.mark.parametrize("nbits", [1, 8, 62])
@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_stochastic_matches_oracle(fmt, nbits):
    """StochasticA with R = the top ``nbits`` bits of ``lowbit.random_bits(seed, offset + i)``."""
    x = inputs(fmt, count=60)
    offset = 11
    if isinstance(fmt, BinaryFormat):
        nbits = 53  # the binary format draws 53-bit uniforms (hard-sigmoid probability)
    rs = lowbit.random_bits(SEED, np.arange(offset, offset + x.size)) >> np.uint64(64 - nbits)
    want = _oracle_array(x, fmt, Rounding.STOCHASTIC, rs, nbits)
    got = lowbit.quantize(x, fmt, Rounding.STOCHASTIC, seed=SEED, random_bits=min(nbits, 62),
                          offset=offset)
    _check(got, want, x, f"quantize stochastic random_bits={nbits}")
    ref = [float(round_exact(float(v), fmt, Rounding.STOCHASTIC, int(rs[i]), nbits))
           for i, v in enumerate(x)]
    _check(np.array(ref), want, x, f"reference stochastic random_bits={nbits}")


def test_oracle_restates_spec_vectors():
    """The oracle itself against the spec's test vectors (section 9.1), so that it cannot drift."""
    e4m3, e8m0 = FORMATS["e4m3fn"], FORMATS["e8m0fnu"]
    rne = Rounding.NEAREST_EVEN
    assert oracle(464.0, e4m3, rne) == 448.0 and math.isnan(oracle(465.0, e4m3, rne))
    assert oracle(2.0**-10, e4m3, rne) == 0.0 and oracle(1.5 * 2**-10, e4m3, rne) == 2.0**-9
    assert oracle(1.1875, e4m3, rne) == 1.25 and oracle(0.1, e4m3, rne) == 0.1015625
    assert oracle(61440.0, FORMATS["e5m2"], rne) == math.inf
    assert oracle(61439.0, FORMATS["e5m2"], rne) == 57344.0
    assert [oracle(v, e8m0, rne) for v in (1.5, 3.0, 2.9, 1.4142)] == [2.0, 4.0, 2.0, 1.0]
    assert math.isnan(oracle(0.0, e8m0, rne)) and math.isnan(oracle(-1.0, e8m0, rne))
    e2m1 = FORMATS["e2m1fn"]
    got = [oracle(v, e2m1, rne) for v in (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, math.inf)]
    assert got == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0]
    r4 = FORMATS["fp4_r4"]
    assert oracle(0.625, r4, rne) == 1.0 and oracle(0.625, r4, Rounding.TOWARD_ZERO) == 0.25
    assert oracle(2.5, r4, rne) == 1.0 and oracle(100.0, r4, Rounding.UP) == 1.0  # saturates
    odd = FORMATS["fp4_r4_odd"]
    assert oracle(5.0, odd, rne) == 2.0 and oracle(1.25, odd, rne) == 2.0
    assert oracle(1.25, odd, Rounding.TOWARD_ZERO) == 0.5


@pytest.mark.parametrize("fmt", [BY_NAME["e3m2_nozero_signed"], BY_NAME["r4_e2m0_nozero"]], ids=lambda f: f.name)
def test_signed_format_without_zero(fmt):
    """No zero: tiny inputs go to +-min by their sign, and so do +-0 (sign-symmetric)."""
    m = float(fmt.min_normal)
    got = lowbit.quantize(np.array([1e-9, -1e-9, -m / 3, 0.0, -0.0]), fmt)
    assert mismatches(got, [m, -m, -m, m, -m]).size == 0


def test_unsigned_radix4_saturates_negatives_to_zero():
    """Unsigned format with SATURATE: negative results become 0 (radix-4 table kernel too)."""
    for fmt in (BY_NAME["ue3m2_sat"], BY_NAME["r4_ue3m1_sat"]):
        got = lowbit.quantize(np.array([-1.0, -1e-9, -100.0]), fmt).tolist()
        assert got == [0.0, 0.0, 0.0], fmt.name


_F32_PATH = [f for f in list(FORMATS.values()) + CUSTOM + _random_custom(12)
             if isinstance(f, FloatFormat) and f.radix == 2 and f.signed and f.zero
             and f.mantissa_bits <= 22 and f.binary_exponent_range[0] >= -126 and f.fits_float32()]


@pytest.mark.parametrize("fmt", _F32_PATH, ids=lambda f: f.name)
def test_magic_rne_kernel_equals_general_rne_kernel(fmt):
    """The short magic-constant RNE (pseudo mode NEAREST_EVEN_MAGIC, chosen by ``quantize``
    where it applies) equals the general float32 RNE kernel (checked against Fractions above) on
    random bit patterns of every class, the format's values, midpoints and their neighbours."""
    from lowbit.emulator.kernels_f32 import quantize_f32
    from lowbit.emulator.llvm_round import NEAREST_EVEN_MAGIC, magic_rne_ok
    from lowbit.emulator.quantize import _f32_common, _f32_params
    emax = fmt.binary_exponent_range[1]
    chosen = _f32_common(fmt, (int(Rounding.NEAREST_EVEN), np.uint64(0), 0, 0))[0]
    applies = magic_rne_ok(fmt.mantissa_bits, emax, fmt.subnormals)
    assert (chosen == NEAREST_EVEN_MAGIC) == applies
    if not applies:
        assert not fmt.subnormals or emax + 24 - fmt.mantissa_bits > 127
        return
    rng = np.random.default_rng(zlib.crc32(fmt.name.encode()))
    bits = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32)
    vals = fmt.values() if fmt.bits <= 16 else np.float64([float(fmt.max), float(fmt.min_normal)])
    vals = vals[np.isfinite(vals)].astype(np.float32)
    mids = ((vals[1:].astype(np.float64) + vals[:-1]) / 2).astype(np.float32)
    x = np.concatenate([bits.view(np.float32), vals, mids, np.nextafter(mids, np.float32(0)),
                        np.nextafter(mids, np.float32(np.inf)),
                        np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0])])
    params = _f32_params(fmt, Rounding.NEAREST_EVEN)
    want, got = np.empty_like(x), np.empty_like(x)
    quantize_f32(x, want, *params, int(Rounding.NEAREST_EVEN), np.uint64(0), 0, 0)
    quantize_f32(x, got, *params, NEAREST_EVEN_MAGIC, np.uint64(0), 0, 0)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), fmt.name


@pytest.mark.parametrize("name", ["e4m3fn", "e5m2fnuz", "e2m1fn"])
@pytest.mark.parametrize("shift", [0, 1, 5])
def test_streaming_rne_equals_general_kernel(name, shift):
    """From STREAM_MIN elements on, RNE writes with streaming stores (peeled to an aligned
    output address, 8 lanes at a time, a scalar tail): the same bits as the general kernel,
    whatever the output's alignment (``shift`` offsets both views by that many elements)."""
    from lowbit.emulator.kernels_f32 import quantize_f32
    from lowbit.emulator.kernels_stream import STREAM_MIN
    from lowbit.emulator.quantize import _f32_params
    fmt = FORMATS[name]
    n = STREAM_MIN + 37
    rng = np.random.default_rng(shift)
    raw = rng.integers(0, 2**32, n + shift, dtype=np.uint64).astype(np.uint32).view(np.float32)
    raw[::7] = rng.standard_normal(raw[::7].size).astype(np.float32)
    x = raw[shift:]
    got_buf = np.full(n + shift, np.float32(7.0))
    got = got_buf[shift:]
    lowbit.quantize(x, fmt, out=got)
    want = np.empty(n, np.float32)
    quantize_f32(x, want, *_f32_params(fmt, Rounding.NEAREST_EVEN), int(Rounding.NEAREST_EVEN),
                 np.uint64(0), 0, 0)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.all(got_buf[:shift] == 7.0)  # nothing written before the view


def test_float64_input_is_rounded_to_odd_at_float32_first():
    """``quantize`` narrows float64 input with ``to_f32_odd`` before the float32 kernels: exact
    values stay, every other one becomes the float32 neighbour with the odd last bit (the two
    neighbours bracket it), and beyond float32's range +-max (odd) stands for the overflow."""
    from lowbit.emulator.kernels_f32 import to_f32_odd
    rng = np.random.default_rng(11)
    x = rng.standard_normal(50_000) * 2.0 ** rng.integers(-160, 140, 50_000)
    x[:1000] = rng.standard_normal(1000).astype(np.float32)  # exactly representable
    x[1000:1010] = [np.inf, -np.inf, 0.0, -0.0, 1e39, -1e39, 3.4028235677973366e38,
                    1e-46, -1e-46, 2.0 ** -149 * 1.5]
    out = np.empty(x.size, np.float32)
    to_f32_odd(x, out)
    exact = out.astype(np.float64) == x
    assert exact[:1000].all() and np.array_equal(np.signbit(out[1002:1004]), [False, True])
    big = np.abs(x) > np.finfo(np.float32).max
    assert np.all(np.abs(out[big & np.isfinite(x)]) == np.finfo(np.float32).max)
    rest = ~exact & ~big
    f = out[rest]
    assert np.all(f.view(np.uint32) & 1 == 1)
    g = np.nextafter(f, np.where(x[rest] > f, np.float32(np.inf), np.float32(-np.inf)))
    lo, hi = np.minimum(f, g).astype(np.float64), np.maximum(f, g).astype(np.float64)
    assert np.all((lo < x[rest]) & (x[rest] < hi))
    assert np.array_equal(np.signbit(out[x != 0]), np.signbit(x[x != 0]))

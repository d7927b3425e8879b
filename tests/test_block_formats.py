"""Block-scaled formats (OCP MX, NVFP4): published vectors, round trips, axes, specials, errors.

Vectors: OCP MX blocks A-D and the RCEIL check (formats_quant spec section 9.2), NVFP4 one- and
two-level (9.3), Transformer Engine MXFP8/NVFP4/E2M1-SR checks (training_hw spec section 8, items
8-10), vendored here as literals.
"""

from __future__ import annotations

import dataclasses
import zlib
from fractions import Fraction

import numpy as np
import pytest

import lowbit
from lowbit import FORMATS, BlockCodes, InvalidArgument, Rounding

MX = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8", "mxfp8_e4m3_rceil"]
ALL = MX + ["nvfp4"]
NV1 = dataclasses.replace(FORMATS["nvfp4"], name="nvfp4_one_level", tensor_scale=False)

BLOCK_A = [1000.0] + [1.0] * 31
BLOCK_B = [7.0, 0.3, -2.5, 0.74] + [0.0] * 28
BLOCK_C = list(np.arange(32) / 2 - 5)
BLOCK_D = [1.0, 0.0078125, 1 / 64, -0.5] + [0.0] * 28

# block, format, E8M0 code, X, P[0..3], dequantised[0..3]   (spec section 9.2, RNE, saturating)
TABLE_92 = [
    (BLOCK_A, "mxfp8_e4m3", 0x80, 2.0, [448, 0.5, 0.5, 0.5], [896, 1, 1, 1]),
    (BLOCK_A, "mxfp8_e5m2", 0x79, 2.0**-6, [57344, 64, 64, 64], [896, 1, 1, 1]),
    (BLOCK_A, "mxfp6_e3m2", 0x84, 32.0, [28, 0, 0, 0], [896, 0, 0, 0]),
    (BLOCK_A, "mxfp6_e2m3", 0x86, 128.0, [7.5, 0, 0, 0], [960, 0, 0, 0]),
    (BLOCK_A, "mxfp4", 0x86, 128.0, [6, 0, 0, 0], [768, 0, 0, 0]),
    (BLOCK_A, "mxint8", 0x88, 512.0, [1.953125, 0, 0, 0], [1000, 0, 0, 0]),
    (BLOCK_B, "mxfp8_e4m3", 0x79, 2.0**-6, [448, 20, -160, 48], [7, 0.3125, -2.5, 0.75]),
    (BLOCK_B, "mxfp6_e2m3", 0x7F, 1.0, [7, 0.25, -2.5, 0.75], [7, 0.25, -2.5, 0.75]),
    (BLOCK_B, "mxfp4", 0x7F, 1.0, [6, 0.5, -2, 0.5], [6, 0.5, -2, 0.5]),
    (BLOCK_B, "mxint8", 0x81, 4.0, [1.75, 0.078125, -0.625, 0.1875], [7, 0.3125, -2.5, 0.75]),
    (BLOCK_C, "mxfp8_e5m2", 0x73, 2.0**-12, [-20480, -16384, -16384, -14336], [-5, -4, -4, -3.5]),
    (BLOCK_C, "mxfp4", 0x80, 2.0, [-2, -2, -2, -2], [-4, -4, -4, -4]),
    (BLOCK_D, "mxfp8_e4m3", 0x77, 2.0**-8, [256, 2, 4, -128], [1, 0.0078125, 0.015625, -0.5]),
    (BLOCK_D, "mxfp4", 0x7D, 0.25, [4, 0, 0, -2], [1, 0, 0, -0.5]),
    (BLOCK_D, "mxint8", 0x7F, 1.0, [1, 0, 0.015625, -0.5], [1, 0, 0.015625, -0.5]),
    # section 9.2's scale-rule check: RCEIL (TE) on block A gives X = 4, P0 = E4M3(250) = 256
    (BLOCK_A, "mxfp8_e4m3_rceil", 0x81, 4.0, [256, 0.25, 0.25, 0.25], [1024, 1, 1, 1]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("block, name, scale_code, scale, elements, dequant", TABLE_92)
def test_spec_92_mx_blocks(block, name, scale_code, scale, elements, dequant, dtype):
    fmt = FORMATS[name]
    x = np.array(block, dtype)
    codes = lowbit.encode(x, fmt)
    assert codes.scales.tolist() == [scale_code]
    assert codes.tensor_scale is None
    assert lowbit.decode(codes.scales, fmt.scale).tolist() == [scale]
    assert lowbit.decode(codes.codes[:4], fmt.element).tolist() == elements
    q = lowbit.quantize(x, fmt)
    assert q.dtype == dtype and q[:4].tolist() == dequant
    np.testing.assert_array_equal(lowbit.decode(codes, fmt), q)


def test_spec_92_mxint8_microxcaling_ties_away():
    """Section 9.2, last row: microxcaling's default rounding (ties away) keeps 0.5/64 -> 1/64."""
    codes = lowbit.encode(np.array(BLOCK_D), "mxint8", "nearest_away")
    assert codes.scales.tolist() == [0x7F]
    assert lowbit.decode(codes.codes[:4], FORMATS["mxint8"].element).tolist() == [
        1, 0.015625, 0.015625, -0.5]


def test_spec_92_mxint8_is_round_64v_over_x():
    """MXINT8 = round_half_even(64 V / X) / 64, clamped to +-127/64 (section 9.2 heading)."""
    x = np.random.default_rng(3).standard_normal((64, 32)) * 10
    q = lowbit.quantize(x, "mxint8").reshape(64, 32)
    for row, qrow in zip(x, q):
        scale = 2.0 ** (np.floor(np.log2(np.abs(row).max())) - 0)
        want = np.clip(np.round(64 * row / scale) / 64, -127 / 64, 127 / 64) * scale
        np.testing.assert_array_equal(qrow, want)


# -------------------------------------------------------------------------- NVFP4 (9.3) ----

NV_BLOCK = [13.0, -6.5, 3.0, 0.4] + [0.0] * 12


def test_spec_93_nvfp4_one_level():
    x = np.array(NV_BLOCK, np.float32)
    codes = lowbit.encode(x, NV1)
    assert codes.tensor_scale is None
    assert lowbit.decode(codes.scales, "ue4m3").tolist() == [2.25]  # 13/6 = 2.1667 -> 2.25
    assert lowbit.decode(codes.codes[:4], "e2m1fn").tolist() == [6, -3, 1.5, 0]
    assert lowbit.quantize(x, NV1)[:4].tolist() == [13.5, -6.75, 3.375, 0]
    np.testing.assert_array_equal(lowbit.decode(codes, NV1), lowbit.quantize(x, NV1))


def test_spec_93_nvfp4_two_level():
    """Global amax 21 = 2688 * 2^-7 gives s_t = 2^-7; the block scale 277.33 is stored as 288."""
    x = np.array(NV_BLOCK + [21.0] + [0.0] * 15, np.float32)
    codes = lowbit.encode(x, "nvfp4")
    assert codes.tensor_scale == 2.0**-7
    assert lowbit.decode(codes.scales, "ue4m3").tolist() == [288, 448]
    assert lowbit.decode(codes.codes[:4], "e2m1fn").tolist() == [6, -3, 1.5, 0]
    q = lowbit.quantize(x, "nvfp4")
    assert q[:4].tolist() == [13.5, -6.75, 3.375, 0] and q[16] == 21
    np.testing.assert_array_equal(lowbit.decode(codes, "nvfp4"), q)


def test_spec_93_per_tensor_scale_2688_is_one():
    x = np.zeros(16, np.float32)
    x[0] = 2688
    assert lowbit.encode(x, "nvfp4").tensor_scale == 1.0


def test_te_8_nvfp4_encode():
    """training_hw 8.9: S_enc = 1; amax 6 -> s_block 1, grid unchanged; amax 3 -> 0.5, 3 -> 6."""
    x = np.zeros(48, np.float32)
    x[0] = 2688
    x[16:20] = [6, 2.5, 2.6, -1.25]
    x[32:34] = [3, -0.75]
    codes = lowbit.encode(x, "nvfp4")
    assert codes.tensor_scale == 1.0
    assert lowbit.decode(codes.scales, "ue4m3").tolist() == [448, 1, 0.5]
    assert lowbit.decode(codes.codes[16:20], "e2m1fn").tolist() == [6, 2, 3, -1]
    assert lowbit.decode(codes.codes[32:34], "e2m1fn").tolist() == [6, -1.5]
    assert lowbit.quantize(x, "nvfp4")[32:34].tolist() == [3, -0.75]


# ----------------------------------------------------------------- TE MXFP8 scale (8.8) ----

@pytest.mark.parametrize("amax, rceil_code, floor_code", [
    (500.0, 128, 127), (448.0, 127, 127), (449.0, 128, 127), (1.0, 119, 119), (3.75, 121, 120),
    (448 * 2.0**-130, 0, 0), (0.0, 0, 0)])
def test_te_8_mxfp8_scale(amax, rceil_code, floor_code):
    x = np.zeros(32)
    x[5] = amax
    assert lowbit.encode(x, "mxfp8_e4m3_rceil").scales.tolist() == [rceil_code]
    assert lowbit.encode(x, "mxfp8_e4m3").scales.tolist() == [floor_code]


def test_te_8_mxfp8_500():
    """TE: scale 2, stored 250 (E4M3 256); OCP: scale 1, 500 saturates to 448."""
    x = np.array([500.0] + [0.0] * 31)
    assert lowbit.quantize(x, "mxfp8_e4m3_rceil")[0] == 2 * 256
    assert lowbit.quantize(x, "mxfp8_e4m3")[0] == 448


def _ceil_oracle(amax: Fraction, max_elem: Fraction) -> int:
    """Smallest e in [-127, 127] with 2^e >= amax / max_elem, by exact Fraction search."""
    e = -127
    while e < 127 and Fraction(2) ** e < amax / max_elem:
        e += 1
    return e


def test_ceil_rule_matches_exact_fraction_search():
    rng = np.random.default_rng(8)
    mags = np.concatenate([448.0 * 2.0 ** rng.integers(-140, 130, 200),
                           np.exp(rng.uniform(-100, 100, 300)),
                           np.nextafter(448.0 * 2.0 ** rng.integers(-20, 20, 50), np.inf),
                           np.nextafter(448.0 * 2.0 ** rng.integers(-20, 20, 50), 0)])
    x = np.zeros((mags.size, 32))
    x[:, 7] = mags
    got = lowbit.encode(x, "mxfp8_e4m3_rceil").scales[:, 0].astype(int) - 127
    want = [_ceil_oracle(Fraction(m), Fraction(448)) for m in mags]
    assert got.tolist() == want


# ----------------------------------------------------------------- E2M1 SR (8.10) ----

def _te_sr_e2m1(a: Fraction, rbits: int) -> Fraction:
    """Transformer Engine's cvt.rs E2M1 (training_hw 0.2), exact for these inputs."""
    u = Fraction(rbits & 0xFF, 256)
    step = 2 if a >= 4 else (1 if a >= 2 else Fraction(1, 2))
    t = a + u * step
    step_t = 2 if t >= 4 else (1 if t >= 2 else Fraction(1, 2))
    return min((t // step_t) * step_t, Fraction(6))


@pytest.mark.parametrize("value", [2.5, 5.9, 0.3])
def test_te_10_e2m1_stochastic_rounding_with_8_bits(value):
    """With S_enc = s_block = 1 the element sees x itself; u = top 8 random bits / 256."""
    seed, n = 1234, 16 * 64
    x = np.full(n, value, np.float32)
    x[::16] = 6.0    # every block has amax 6: s_block = e4m3(6 * (1/6)) = 1 ...
    x[0] = 2688.0    # ... once the global amax 2688 = 448 * 6 makes S_enc = 1 (block 0)
    q = lowbit.quantize(x, "nvfp4", Rounding.STOCHASTIC, seed=seed, random_bits=8)
    rbits = lowbit.random_bits(seed, np.arange(n)) >> np.uint64(56)
    idx = [i for i in range(16, n) if i % 16]
    want = [float(_te_sr_e2m1(Fraction(float(np.float32(value))), int(rbits[i]))) for i in idx]
    assert q[idx].tolist() == want
    assert len(set(want)) == 2  # both neighbours occur


def test_stochastic_index_is_flat_index_of_x():
    """axis=0 blocks, yet element i of the random stream is flat (C-order) index i of x."""
    fmt = dataclasses.replace(FORMATS["mxfp4"], name="mxfp4_axis0", axis=0)
    x = np.full((32, 8), 2.5)
    x[0, :] = 6.0  # amax 6 -> X = 1, so elements are x itself
    q = lowbit.quantize(x, fmt, "stochastic", seed=7, random_bits=8)
    rbits = (lowbit.random_bits(7, np.arange(x.size)) >> np.uint64(56)).reshape(x.shape)
    np.testing.assert_array_equal(q[1:], np.where(rbits[1:] >= 128, 3.0, 2.0))
    again = lowbit.quantize(x, fmt, "stochastic", seed=7, random_bits=8)
    np.testing.assert_array_equal(q, again)


# --------------------------------------------------------------------- round trips ----

def _random(shape, rng, dtype=np.float64):
    span = 6 if dtype == np.float16 else 20
    scale = np.exp(rng.uniform(-span, span, shape[:-1] + (1,)))
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("mode", [Rounding.NEAREST_EVEN, Rounding.TOWARD_ZERO, Rounding.UP,
                                  Rounding.STOCHASTIC])
def test_decode_encode_equals_quantize(name, mode):
    rng = np.random.default_rng(zlib.crc32(name.encode()) + int(mode))
    for shape, dtype in [((5, 70), np.float32), ((3, 64), np.float64), ((40,), np.float16)]:
        x = _random(shape, rng, dtype)
        q = lowbit.quantize(x, name, mode, seed=11, random_bits=8)
        codes = lowbit.encode(x, name, mode, seed=11, random_bits=8)
        assert codes.codes.shape == x.shape
        assert codes.scales.shape == shape[:-1] + (-(-shape[-1] // FORMATS[name].block_size),)
        assert q.dtype == (np.float64 if dtype == np.float64 else np.float32)
        np.testing.assert_array_equal(lowbit.decode(codes, name).astype(q.dtype), q)


@pytest.mark.parametrize("name", MX)  # not NVFP4: its scales depend on the (changed) amaxes
def test_quantize_is_idempotent_and_does_not_touch_input(name):
    x = _random((4, 96), np.random.default_rng(5), np.float32)
    before = x.copy()
    q = lowbit.quantize(x, name)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(lowbit.quantize(q, name), q)


def test_out_argument():
    x = _random((2, 64), np.random.default_rng(1), np.float32)
    out = np.empty_like(x)
    assert lowbit.quantize(x, "mxfp4", out=out) is out
    np.testing.assert_array_equal(out, lowbit.quantize(x, "mxfp4"))
    with pytest.raises(InvalidArgument, match="out"):
        lowbit.quantize(x, "mxfp4", out=np.empty(x.shape, np.float64))


# -------------------------------------------------------------------------- axes ----

@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxint8", "mxfp8_e4m3_rceil", "nvfp4"])
def test_axis_zero_is_axis_minus_one_on_the_transpose(name):
    fmt0 = dataclasses.replace(FORMATS[name], name=name + "_axis0", axis=0)
    x = np.ascontiguousarray(_random((6, 50), np.random.default_rng(2), np.float32).T)
    q0 = lowbit.quantize(x, fmt0)
    np.testing.assert_array_equal(q0, lowbit.quantize(np.ascontiguousarray(x.T), name).T)
    c0 = lowbit.encode(x, fmt0)
    bs = FORMATS[name].block_size
    assert c0.scales.shape == (-(-50 // bs), 6)
    np.testing.assert_array_equal(lowbit.decode(c0, fmt0), q0)


@pytest.mark.parametrize("name", MX)
def test_partial_final_block_uses_its_own_amax(name):
    x = _random((1, 40), np.random.default_rng(4))[0]
    x[:32] *= 1e6  # the full block is much larger than the tail
    q = lowbit.quantize(x, name)
    np.testing.assert_array_equal(q[:32], lowbit.quantize(x[:32], name))
    np.testing.assert_array_equal(q[32:], lowbit.quantize(x[32:], name))
    assert lowbit.encode(x, name).scales.shape == (2,)


def test_empty_and_3d():
    assert lowbit.quantize(np.zeros((0, 5)), "mxfp4").shape == (0, 5)
    x = _random((2, 3, 33), np.random.default_rng(6))
    c = lowbit.encode(x, "mxfp4")
    assert c.scales.shape == (2, 3, 2)
    np.testing.assert_array_equal(lowbit.decode(c, "mxfp4"), lowbit.quantize(x, "mxfp4"))


# ------------------------------------------------------------------------- specials ----

@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp4", "mxint8", "nvfp4"])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_makes_its_block_nan(name, special):
    fmt = FORMATS[name]
    bs = fmt.block_size
    x = np.ones(3 * bs, np.float32)
    x[bs + 3] = special
    q = lowbit.quantize(x, fmt)
    assert np.isnan(q[bs:2 * bs]).all()
    assert not np.isnan(q[:bs]).any() and not np.isnan(q[2 * bs:]).any()
    codes = lowbit.encode(x, fmt)
    assert codes.scales[1] == fmt.scale.nan_code
    assert np.isnan(lowbit.decode(codes, fmt)[bs:2 * bs]).all()


def test_rceil_inf_saturates_and_nan_is_nan():
    """TE float_to_e8m0: Inf -> 0xFE (elements saturate), NaN -> 0xFF."""
    x = np.ones(64)
    x[0], x[33] = np.inf, np.nan
    codes = lowbit.encode(x, "mxfp8_e4m3_rceil")
    assert codes.scales.tolist() == [0xFE, 0xFF]
    q = lowbit.quantize(x, "mxfp8_e4m3_rceil")
    assert q[0] == 448 * 2.0**127 and q[1] == 0 and np.isnan(q[32:]).all()


def test_floor_scale_overflow_is_nan_and_zero_block_is_2_pow_minus_127():
    x = np.zeros(64)
    x[0] = 2.0**200          # shared_exp = 200 - 8 > 127
    codes = lowbit.encode(x, "mxfp8_e4m3")
    assert codes.scales.tolist() == [0xFF, 0x00]
    q = lowbit.quantize(x, "mxfp8_e4m3")
    assert np.isnan(q[:32]).all() and (q[32:] == 0).all()


def test_directed_rounding_of_values_far_below_the_block_scale():
    x = np.zeros(32)
    x[0], x[1], x[2] = 2.0**135, 2.0**-1074, -(2.0**-1074)  # X = 2^127: x/X underflows
    q = lowbit.quantize(x, "mxfp8_e4m3", "up")
    smallest = 2.0**-9 * 2.0**127
    assert q[1] == smallest and q[2] == 0 and np.signbit(q[2])


# --------------------------------------------------------------------------- errors ----

def test_non_numeric_x():
    with pytest.raises(InvalidArgument, match="x"):
        lowbit.quantize(np.array(["a", "b"]), "mxfp4")
    with pytest.raises(InvalidArgument, match="x"):
        lowbit.encode(np.array(["a"]), "nvfp4")


def test_axis_out_of_range():
    fmt = dataclasses.replace(FORMATS["mxfp4"], name="mxfp4_axis1", axis=1)
    with pytest.raises(InvalidArgument, match="axis=1"):
        lowbit.quantize(np.ones(32), fmt)
    with pytest.raises(InvalidArgument, match="axis"):
        lowbit.quantize(np.float64(3.0), "mxfp4")


def test_bad_block_codes():
    codes = lowbit.encode(np.ones((2, 40)), "mxfp4")
    with pytest.raises(InvalidArgument, match="scales"):
        lowbit.decode(BlockCodes(codes.codes, codes.scales[:, :1], None), "mxfp4")
    with pytest.raises(InvalidArgument, match="scales"):
        lowbit.decode(BlockCodes(codes.codes, codes.scales[:, None], None), "mxfp4")
    with pytest.raises(InvalidArgument, match="BlockCodes"):
        lowbit.decode(codes.codes, "mxfp4")
    with pytest.raises(InvalidArgument, match="dtype"):
        lowbit.decode(BlockCodes(codes.codes.astype(float), codes.scales, None), "mxfp4")
    with pytest.raises(InvalidArgument, match="tensor_scale"):
        lowbit.decode(BlockCodes(codes.codes, codes.scales, 1.0), "mxfp4")
    nv = lowbit.encode(np.ones(32), "nvfp4")
    with pytest.raises(InvalidArgument, match="tensor_scale"):
        lowbit.decode(BlockCodes(nv.codes, nv.scales, None), "nvfp4")
    with pytest.raises(InvalidArgument, match="codes"):
        lowbit.decode(BlockCodes(codes.codes + 16, codes.scales, None), "mxfp4")


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "nvfp4"])
def test_layout_and_byte_order_of_x_do_not_matter(name):
    x = _random((4, 70), np.random.default_rng(12))
    want = lowbit.quantize(x, name)
    np.testing.assert_array_equal(lowbit.quantize(np.asfortranarray(x), name), want)
    np.testing.assert_array_equal(lowbit.quantize(np.repeat(x, 2, axis=1)[:, ::2], name), want)
    big_endian = lowbit.quantize(x.astype(">f8"), name)
    assert big_endian.dtype == np.float64
    np.testing.assert_array_equal(big_endian, want)


# ------------------------------------------- found while writing this file (element path) ----

def test_element_quantize_accepts_non_native_byte_order():
    """lowbit.quantize on a big-endian float array (which as_float_array lets through) reaches
    numba with dtype >f8 and fails in type inference; block formats convert it first."""
    x = np.array([1.0625, 300.0, 1e-3])
    np.testing.assert_array_equal(lowbit.quantize(x.astype(">f8"), "e4m3fn"),
                                  lowbit.quantize(x, "e4m3fn"))

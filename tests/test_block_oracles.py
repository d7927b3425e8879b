"""Block formats against independent implementations.

* gfloat (graphcore-research/gfloat, the ``oracles`` extra): OCP MX FLOOR quantisation
  (``quantize_block`` with ``compute_scale_amax``, ties-to-even, saturating) for every MX float
  format. gfloat is required: without it this module fails with an explicit message.
* A per-block scalar replay of Transformer Engine's NVFP4 steps with ``np.float32`` scalars and
  ml_dtypes casts (E4M3 scale, E2M1 elements).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import lowbit
from lowbit import FORMATS

try:
    import gfloat
    import gfloat.formats as gformats
except ImportError as e:  # pragma: no cover - the failure is the point
    raise ImportError("tests/test_block_oracles.py needs gfloat (pip install 'lowbit[oracles]' "
                      "or pip install gfloat): it is the OCP MX reference oracle") from e

import ml_dtypes

GFLOAT_MX = {
    "mxfp8_e4m3": gformats.format_info_mxfp8_e4m3,
    "mxfp8_e5m2": gformats.format_info_mxfp8_e5m2,
    "mxfp6_e3m2": gformats.format_info_mxfp6_e3m2,
    "mxfp6_e2m3": gformats.format_info_mxfp6_e2m3,
    "mxfp4": gformats.format_info_mxfp4_e2m1,
}


def _gfloat_mx(name: str, block: np.ndarray) -> np.ndarray:
    return gfloat.quantize_block(GFLOAT_MX[name], block, gfloat.compute_scale_amax,
                                 gfloat.RoundMode.TiesToEven)


def _random_blocks(rng: np.random.Generator, nblocks: int) -> np.ndarray:
    """Blocks of normal, heavy-tailed and sparse values over a wide range of magnitudes."""
    blocks = rng.standard_normal((nblocks, 32)) * np.exp(rng.uniform(-60, 60, (nblocks, 1)))
    blocks[::3] = rng.standard_cauchy((len(blocks[::3]), 32))
    blocks[1::4] *= rng.random((len(blocks[1::4]), 32)) < 0.2
    return blocks.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("name", sorted(GFLOAT_MX))
def test_mx_floor_matches_gfloat(name):
    rng = np.random.default_rng(sorted(GFLOAT_MX).index(name))
    blocks = _random_blocks(rng, 40)
    got = lowbit.quantize(blocks, name)  # axis -1, one block per row
    for block, row in zip(blocks, got):
        np.testing.assert_array_equal(row, _gfloat_mx(name, block))


@pytest.mark.parametrize("name", sorted(GFLOAT_MX))
@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.floats(-2.0**100, 2.0**100, width=32), min_size=32, max_size=32))
@example(values=[1000.0] + [1.0] * 31)
@example(values=[0.0] * 32)
@example(values=[-5.0 + i / 2 for i in range(32)])
def test_mx_floor_matches_gfloat_hypothesis(name, values):
    block = np.array(values)
    np.testing.assert_array_equal(lowbit.quantize(block, name), _gfloat_mx(name, block))


# ------------------------------------------------------------------ NVFP4 scalar replay ----

F32 = np.float32
FLT_MAX = np.finfo(np.float32).max


def _nvfp4_reference(x: np.ndarray, tensor_scale: bool = True) -> np.ndarray:
    """TE NVFP4 encode+decode, one block at a time, in float32 scalars (training_hw 7.5)."""
    x = x.astype(F32)
    s_enc = F32(1)
    if tensor_scale:
        g = F32(np.abs(x).max())
        with np.errstate(divide="ignore", over="ignore"):
            s_enc = F32(min(F32(448 * 6) / g, FLT_MAX)) if g != 0 else F32(1)
        if s_enc == 0:
            s_enc = F32(1)
    s_dec = F32(1) / s_enc
    out = np.empty_like(x)
    for b in range(0, x.size, 16):
        blk = x[b:b + 16]
        raw = F32(min(F32(np.abs(blk).max()) * (s_enc * (F32(1) / F32(6))), FLT_MAX))
        s_block = F32(np.array(min(raw, F32(448))).astype(ml_dtypes.float8_e4m3fn))
        with np.errstate(divide="ignore", over="ignore"):  # 1/0 and x * FLT_MAX, as on a GPU
            enc = F32(min(F32(1) / (s_block * s_dec), FLT_MAX))
            scaled = np.clip(blk * enc, F32(-6), F32(6)).astype(F32)
        q = scaled.astype(ml_dtypes.float4_e2m1fn).astype(F32)
        out[b:b + 16] = q * s_block * s_dec
    return out


@pytest.mark.parametrize("tensor_scale", [True, False])
def test_nvfp4_matches_scalar_replay(tensor_scale):
    import dataclasses
    fmt = FORMATS["nvfp4"] if tensor_scale else dataclasses.replace(
        FORMATS["nvfp4"], name="nvfp4_one_level", tensor_scale=False)
    rng = np.random.default_rng(9)
    for span in (1, 10, 40):
        x = (rng.standard_normal(16 * 24) * np.exp(rng.uniform(-span, span, 16 * 24)))
        x[rng.random(x.size) < 0.1] = 0
        x[:16] = 0  # an all-zero block
        x = x.astype(F32)
        np.testing.assert_array_equal(lowbit.quantize(x, fmt), _nvfp4_reference(x, tensor_scale))

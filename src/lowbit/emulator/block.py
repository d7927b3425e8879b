"""Block-scaled formats (OCP MX, NVIDIA NVFP4): quantise, encode, decode.

``block_size`` consecutive values along ``fmt.axis`` share one scale; a final partial block is
allowed (its amax is taken over the elements present). The scale of each block comes from the
block's largest magnitude ``amax`` by one of three rules (:class:`~lowbit.ScaleRule`); the elements
``x / scale`` are then rounded by the ordinary element quantiser (:func:`lowbit.quantize`), so every
rounding mode works, and stochastic rounding draws the random bits of element ``i`` = the flat
(C-order) index of the element in ``x``.

* ``FLOOR`` (OCP MX v1.0 section 6.3): ``shared_exp = floor(log2 amax) - emax_elem``, exact (the
  binary exponent of ``amax``, as the FP32 exponent field gives it), clamped to the scale format's
  exponent range ``[-127, 127]``; ``amax == 0`` gives ``-127`` (as microxcaling and torchao);
  a non-finite ``amax`` or ``shared_exp > 127`` makes the block NaN (scale code 0xFF). Elements
  ``x / 2^shared_exp`` saturate to +-max_elem.
* ``CEIL`` (Transformer Engine MXFP8, ``cvt.rp.satfinite.ue8m0``): the smallest power of two
  ``>= amax / max_elem``, computed exactly, saturating at 2^127 (0xFE) and at least 2^-127 (0x00,
  also for ``amax == 0``); ``amax = +inf`` gives 0xFE and a NaN gives 0xFF (TE's ``float_to_e8m0``).
* ``NVFP4`` (Transformer Engine's order of operations, every step in float32): see
  :func:`_nvfp4_scales`. Input is first rounded to float32 (TE reads FP32/BF16).

Example:
    >>> import numpy as np, lowbit
    >>> x = np.array([1000.0] + [1.0] * 31, np.float32)
    >>> lowbit.quantize(x, "mxfp8_e4m3")[:2].tolist()
    [896.0, 1.0]
    >>> c = lowbit.encode(x, "mxfp8_e4m3")
    >>> hex(int(c.scales[0])), lowbit.decode(c, "mxfp8_e4m3")[:2].tolist()
    ('0x80', [896.0, 1.0])
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from ..formats import BlockFormat, FloatFormat, InvalidArgument, Rounding, ScaleRule
from . import arguments as A

__all__ = ["BlockCodes", "quantize_block", "encode_block", "decode_block"]

_F32 = np.float32
_FLT_MAX = np.finfo(np.float32).max


class BlockCodes(NamedTuple):
    """What :func:`lowbit.encode` returns for a block format.

    ``codes``: element codes, ``x``'s shape. ``scales``: scale codes, ``x``'s shape with the block
    axis reduced to ``ceil(n / block_size)``. ``tensor_scale``: the FP32 per-tensor decode scale
    (NVFP4's ``S_dec``), or ``None`` for formats without one.
    """

    codes: np.ndarray
    scales: np.ndarray
    tensor_scale: Optional[float]


class _Blocks(NamedTuple):
    """``x`` with the block axis moved last and cut into ``(..., nblocks, block_size)``."""

    data: np.ndarray
    n: int      # length of the block axis in x
    axis: int   # the block axis of x, non-negative


# ---------------------------------------------------------------------------------- public ----

def quantize_block(arr: np.ndarray, fmt: BlockFormat, mode: Rounding, *, seed=None,
                   random_bits=None, out=None) -> np.ndarray:
    """Dequantised values of ``arr`` in the block format (``x``'s shape).

    float32 for float16/32 input, float64 for float64 input.

    Example:
        >>> import numpy as np, lowbit
        >>> lowbit.quantize(np.array([7, 0.3, -2.5, 0.74]), "mxfp4").tolist()
        [6.0, 0.5, -2.0, 0.5]
    """
    dtype = np.dtype(np.float64 if arr.dtype.type is np.float64 else np.float32)
    result = A.check_out(out, arr.shape, dtype)
    q, scale, blocks = _quantize_elements(arr, fmt, mode, seed, random_bits, encode=False,
                                          out=result)
    target = _block(result, fmt.block_size, blocks.axis).data
    in_place = target.flags.c_contiguous and np.may_share_memory(target, result)  # a view
    dest = target if in_place else np.empty(target.shape, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if fmt.rule == ScaleRule.NVFP4:  # float32, left to right as TE: (q * s_block) * S_dec
            q = _scale_blocks(q, scale[0], _F32)
            _scale_blocks(q, np.full(scale[0].shape, scale[1], _F32), dtype, out=dest)
        else:  # q * 2^e exactly in float64, rounded once to the result dtype
            _blocks_call("mx_postscale", q, scale, _scale_exponent_range(fmt)[1], dest)
    if not in_place:
        result[...] = _unblock(dest, blocks)
    return result


def encode_block(arr: np.ndarray, fmt: BlockFormat, mode: Rounding, *, seed=None,
                 random_bits=None) -> BlockCodes:
    """Element codes, scale codes and tensor scale of ``arr`` in the block format.

    A NaN block (see the module docstring) has the scale format's NaN code and element codes equal
    to the element NaN code where the element format has one, else 0.

    Example:
        >>> import numpy as np, lowbit
        >>> c = lowbit.encode(np.array([7, 0.3, -2.5, 0.74]), "mxfp4")
        >>> c.codes.tolist(), c.scales.tolist(), c.tensor_scale
        ([7, 1, 12, 1], [127], None)
    """
    codes, scale_codes, tensor_scale, blocks = _quantize_elements(
        arr, fmt, mode, seed, random_bits, encode=True)
    return BlockCodes(codes, _unblock_scales(scale_codes, blocks), tensor_scale)


def decode_block(codes: BlockCodes, fmt: BlockFormat) -> np.ndarray:
    """Values of the :class:`BlockCodes` ``codes``: element value x block scale (x tensor scale).

    MX formats decode exactly in float64; NVFP4 in float32, ``(q * s_block) * S_dec`` as TE does.

    Example:
        >>> import numpy as np, lowbit
        >>> c = lowbit.BlockCodes(np.array([7, 1], np.uint8), np.array([128], np.uint8), None)
        >>> lowbit.decode(c, "mxfp4").tolist()
        [12.0, 1.0]
    """
    from .quantize import decode
    codes, scales, tensor_scale = _check_codes(codes, fmt)
    axis = _check_axis(fmt, codes.ndim, "codes")
    blocks = _block(codes, fmt.block_size, axis, pad_value=0)
    elements = decode(blocks.data, fmt.element)
    block_scales = decode(np.moveaxis(scales, axis, -1), fmt.scale)
    with np.errstate(over="ignore", invalid="ignore"):
        if fmt.rule == ScaleRule.NVFP4:
            s_dec = _F32(1.0 if tensor_scale is None else tensor_scale)
            value = elements.astype(_F32) * block_scales.astype(_F32)[..., None] * s_dec
        else:
            value = elements.astype(np.float64) * block_scales.astype(np.float64)[..., None]
    return np.ascontiguousarray(_unblock(value, blocks))


# ------------------------------------------------------------------------------- blocking ----

def _check_axis(fmt: BlockFormat, ndim: int, argument: str) -> int:
    if not -ndim <= fmt.axis < ndim:
        raise InvalidArgument(f"{argument}: {fmt.name} blocks along axis={fmt.axis}, but "
                              f"{argument} has {ndim} dimension(s); allowed: an array with at "
                              f"least {fmt.axis + 1 if fmt.axis >= 0 else -fmt.axis} dimension(s)")
    return fmt.axis % ndim


def _block(arr: np.ndarray, block_size: int, axis: int, pad_value=0) -> _Blocks:
    """A view (or, for a partial final block or another axis, a copy) ``(..., nb, block_size)``."""
    moved = np.moveaxis(arr, axis, -1)
    n = moved.shape[-1]
    nb = -(-n // block_size)
    pad = nb * block_size - n
    if pad:
        moved = np.concatenate(
            [moved, np.full(moved.shape[:-1] + (pad,), pad_value, dtype=moved.dtype)], axis=-1)
    return _Blocks(moved.reshape(moved.shape[:-1] + (nb, block_size)), n, axis)


def _unblock(data: np.ndarray, blocks: _Blocks) -> np.ndarray:
    """Inverse of :func:`_block` (a view where possible)."""
    flat = data.reshape(data.shape[:-2] + (data.shape[-2] * data.shape[-1],))[..., :blocks.n]
    return np.moveaxis(flat, -1, blocks.axis)


def _unblock_scales(scales: np.ndarray, blocks: _Blocks) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(scales, -1, blocks.axis))


def _to_x_layout(data: np.ndarray, blocks: _Blocks) -> np.ndarray:
    """Blocked data back in x's shape, C-contiguous: element i is flat index i of x."""
    return np.ascontiguousarray(_unblock(data, blocks))


# ------------------------------------------------------------------------------- elements ----

def _quantize_elements(arr, fmt, mode, seed, random_bits, *, encode, out=None):
    """Scales and element values (or codes) in blocked layout.

    Returns ``(q, scale, blocks)`` for quantise -- ``scale`` is the int64 block exponent (above
    the scale format's range for a NaN block) or, for NVFP4, the pair (float32 block scales, NaN
    for a NaN block, and the float32 ``S_dec``) -- and
    ``(codes, scale_codes, tensor_scale, blocks)`` for encode. The element values go to ``out``
    (x's layout) when its dtype is the element quantiser's, saving a pass and an allocation.
    """
    from .quantize import encode as encode_fn, quantize
    axis = _check_axis(fmt, arr.ndim, "x")
    narrow = arr.dtype.type is not np.float64 or fmt.rule == ScaleRule.NVFP4
    work = arr.astype(_F32, copy=False) if narrow else arr.astype(np.float64, copy=False)
    blocks = _block(work, fmt.block_size, axis)
    if fmt.rule == ScaleRule.NVFP4:
        amax = _block_amax(blocks.data)
        scaled, nan_block, s_block, s_dec = _nvfp4_scales(blocks.data, amax, fmt)
    else:
        scaled, exp = _mx_prescale(blocks.data, fmt, 0.0 if encode else np.nan)
        nan_block = exp > _scale_exponent_range(fmt)[1]
        if mode in (Rounding.UP, Rounding.DOWN, Rounding.TO_ODD):
            scaled = _keep_underflow_sign(scaled, blocks.data)
    if fmt.rule == ScaleRule.NVFP4 and nan_block.any():
        scaled = np.where(nan_block[..., None], 0.0 if encode else np.nan, scaled).astype(_F32)
    x_layout = _to_x_layout(scaled, blocks)
    kw = dict(seed=seed, random_bits=random_bits)
    if isinstance(fmt.element, FloatFormat):
        kw["overflow"] = "saturate"
    if encode:
        codes = _block(encode_fn(x_layout, fmt.element, mode, **kw), fmt.block_size, axis).data
        elem_nan = getattr(fmt.element, "nan_code", None)
        if nan_block.any():
            codes = np.where(nan_block[..., None], elem_nan or 0, codes).astype(codes.dtype)
        codes = _to_x_layout(codes, blocks)
        if fmt.rule == ScaleRule.NVFP4:
            scale_codes = encode_fn(s_block, fmt.scale)
            tensor_scale = float(s_dec) if fmt.tensor_scale else None
        else:
            scale_codes = encode_fn(np.ldexp(1.0, np.where(nan_block, 0, exp)), fmt.scale)
            tensor_scale = None
        if nan_block.any():
            scale_codes = np.where(nan_block, fmt.scale.nan_code, scale_codes).astype(
                scale_codes.dtype)
        return codes, scale_codes, tensor_scale, blocks
    if out is not None and out.dtype == A.output_dtype(x_layout, fmt.element):
        kw["out"] = out
    q = _block(quantize(x_layout, fmt.element, mode, **kw), fmt.block_size, axis).data
    if fmt.rule == ScaleRule.NVFP4:
        s_block = np.where(nan_block, np.nan, s_block).astype(_F32)
        return q.astype(_F32, copy=False), (s_block, s_dec), blocks
    return q, exp, blocks


def _blocks_call(kernel: str, data: np.ndarray, *args) -> None:
    """Run a ``kernels_block`` kernel on ``data`` seen as ``(nblocks, block_size)``; array
    arguments of ``data``'s block shape become 1-D, of its full shape 2-D."""
    from . import kernels_block
    if data.size == 0:
        return
    bs = data.shape[-1]
    flat = []
    for a in args:
        if isinstance(a, np.ndarray):
            a = a.reshape(-1, bs) if a.shape == data.shape else a.reshape(-1)
        flat.append(a)
    getattr(kernels_block, kernel)(np.ascontiguousarray(data).reshape(-1, bs), *flat)


def _block_amax(data: np.ndarray) -> np.ndarray:
    """float64 ``max |x|`` over the last axis of ``data`` (NaN if a NaN is present)."""
    amax = np.zeros(data.shape[:-1], np.float64)
    _blocks_call("block_amax", data, amax)
    return amax


def _scale_blocks(data: np.ndarray, factor: np.ndarray, dtype, out=None) -> np.ndarray:
    """``data * factor[..., None]`` computed in ``data.dtype``, stored as ``dtype``."""
    out = np.empty(data.shape, dtype) if out is None else out
    _blocks_call("scale_blocks", data, np.ascontiguousarray(factor, data.dtype), out)
    return out


def _keep_underflow_sign(scaled: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Where ``x / 2^e`` underflowed to 0 although ``x != 0``, the smallest subnormal of x's sign.

    Such a value lies far below the element format's smallest subnormal, so any tiny value of the
    right sign rounds as the exact quotient would (matters for UP, DOWN, TO_ODD).
    """
    lost = (scaled == 0) & (x != 0)
    if not lost.any():
        return scaled
    tiny = np.finfo(scaled.dtype).smallest_subnormal
    return np.where(lost, np.copysign(tiny, x), scaled)


# --------------------------------------------------------------------------------- scales ----

def _scale_exponent_range(fmt: BlockFormat) -> tuple[int, int]:
    lo = math.floor(math.log2(fmt.scale.min_positive))
    hi = math.floor(math.log2(fmt.scale.max))
    return lo, hi


def _mx_prescale(data: np.ndarray, fmt: BlockFormat, nan_fill: float):
    """``(data / 2^e, e)`` per block by the FLOOR or CEIL rule (see ``kernels_block``)."""
    lo, hi = _scale_exponent_range(fmt)
    g, big_g = math.frexp(float(fmt.element.max))
    rule = 0 if fmt.rule == ScaleRule.FLOOR else 1
    out = np.empty(data.shape, data.dtype)
    exps = np.zeros(data.shape[:-1], np.int64)
    _blocks_call("mx_prescale", data, out, exps, rule, fmt.element_emax, g, big_g, lo, hi,
                 nan_fill)
    return out, exps


def _nvfp4_scales(data: np.ndarray, amax: np.ndarray, fmt: BlockFormat):
    """Transformer Engine's NVFP4 encode, every step a float32 operation (``cast/nvfp4``):

    ``S_enc = min(448*6 / global_amax, FLT_MAX)``, 1 if ``global_amax == 0`` or ``S_enc == 0``
    (``global_amax`` ignores NaN, as ``fmaxf`` does; formats without ``tensor_scale``: 1);
    ``S_dec = 1 / S_enc``; ``s_block = e4m3_RNE_satfinite(min(block_amax * (S_enc * (1/6)),
    FLT_MAX))``; ``encode_scale = min(1 / (s_block * S_dec), FLT_MAX)``;
    elements ``clamp(x * encode_scale, -6, 6)``. A block holding a NaN or an infinity is a NaN
    block (lowbit's rule; TE's ``fminf`` would turn it into finite values).

    Returns the scaled elements (float32, blocked), the NaN-block mask, the float32 block scales
    (already on the scale format's grid) and ``S_dec``.
    """
    from .quantize import quantize
    elem_max = _F32(float(fmt.element.max))
    scale_max = _F32(float(fmt.scale.max))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        s_enc = _F32(1.0)
        if fmt.tensor_scale:
            global_amax = _F32(np.fmax.reduce(amax, axis=None, initial=0.0)) if amax.size \
                else _F32(0.0)
            s_enc = np.fmin(_F32(elem_max * scale_max) / global_amax, _FLT_MAX)
            if global_amax == 0 or s_enc == 0:
                s_enc = _F32(1.0)
        s_dec = _F32(1.0) / s_enc
        nan_block = ~np.isfinite(amax)
        amax = amax.astype(_F32)
        raw = np.fmin(amax * (s_enc * (_F32(1.0) / elem_max)), _FLT_MAX)
        raw = np.where(nan_block, 0, raw).astype(_F32)
        s_block = quantize(raw, fmt.scale, Rounding.NEAREST_EVEN, overflow="saturate")
        encode_scale = np.fmin(_F32(1.0) / (s_block * s_dec), _FLT_MAX).astype(_F32)
        scaled = _scale_blocks(data, encode_scale, _F32)
        np.clip(scaled, -elem_max, elem_max, out=scaled)
    return scaled, nan_block, s_block.astype(_F32), s_dec


# -------------------------------------------------------------------------------- decoding ----

def _check_codes(codes: object, fmt: BlockFormat):
    if not (isinstance(codes, tuple) and len(codes) == 3):
        raise InvalidArgument(f"codes: {fmt.name} decodes a lowbit.BlockCodes (codes, scales, "
                              f"tensor_scale) as returned by lowbit.encode, got "
                              f"{type(codes).__name__}")
    elements, scales, tensor_scale = (np.asarray(codes[0]), np.asarray(codes[1]), codes[2])
    for name, a in (("codes.codes", elements), ("codes.scales", scales)):
        if a.dtype.kind not in "iu":
            raise InvalidArgument(f"{name}: dtype {a.dtype}; allowed: an integer dtype")
    axis = _check_axis(fmt, elements.ndim, "codes.codes")
    want = list(elements.shape)
    want[axis] = -(-want[axis] // fmt.block_size)
    if scales.shape != tuple(want):
        raise InvalidArgument(f"codes.scales: shape {scales.shape}; {fmt.name} with element codes "
                              f"of shape {elements.shape} needs scales of shape {tuple(want)} "
                              f"(axis {fmt.axis} reduced to ceil(n / {fmt.block_size}))")
    if fmt.tensor_scale:
        if isinstance(tensor_scale, (bool, np.bool_)) or not isinstance(
                tensor_scale, (int, float, np.integer, np.floating)):
            raise InvalidArgument(f"codes.tensor_scale={tensor_scale!r}: {fmt.name} needs the "
                                  "FP32 per-tensor scale (a float)")
    elif tensor_scale is not None:
        raise InvalidArgument(f"codes.tensor_scale={tensor_scale!r}: {fmt.name} has no tensor "
                              "scale; allowed: None")
    return elements, scales, tensor_scale

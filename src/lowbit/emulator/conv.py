"""2-D convolution through a MAC-array datapath, by im2col and :func:`~lowbit.emulator.gemm`.

Each output element is one dot product over ``K = (C/groups) * kh * kw`` terms, accumulated in
the order (input channel, kernel row, kernel column) ascending -- the order of PyTorch's weight
layout. Zero padding contributes exact zero products at its place in that order. A bias is the
initial accumulator (``C`` of the GEMM), as MAC arrays preload it.
"""

from __future__ import annotations

import numpy as np

from ..formats import InvalidArgument
from .counters import Counters
from .datapath import Datapath
from .gemm import gemm

__all__ = ["conv2d"]


def _pair(v, name: str, lo: int) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or any(isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < lo
                          for u in t):
        raise InvalidArgument(f"{name}={v!r}: must be an int >= {lo} or a pair of them")
    return int(t[0]), int(t[1])


def conv2d(x, weight, datapath: Datapath, bias=None, stride=1, padding=0, dilation=1,
           groups: int = 1, counters: bool = False):
    """``y[n, o] = bias[o] + sum_{c,i,j} w[o, c, i, j] * x[n, g*C/G + c, ...]`` through ``datapath``.

    Args:
        x: ``[N, C, H, W]``; weight: ``[O, C/groups, kh, kw]``; bias: ``[O]`` or None.
        datapath: operand ``a`` is the weight, ``b`` the input patches (``out = W @ cols``).
        stride, padding, dilation: an int or a pair; groups divides C and O.

    Returns:
        float64 ``[N, O, Ho, Wo]`` (and a :class:`Counters` with ``counters=True``).

    Example:
        >>> import numpy as np
        >>> from lowbit.emulator.datapath import Datapath, Sequential
        >>> dp = Datapath(a="bf16", b="bf16", accumulation=Sequential(format="binary32"))
        >>> conv2d(np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), dp, padding=1).shape
        (1, 3, 4, 4)
    """
    x, w = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    if x.ndim != 4 or w.ndim != 4:
        raise InvalidArgument(f"conv2d: x {x.shape} must be [N, C, H, W] and weight {w.shape} "
                              "[O, C/groups, kh, kw]")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1 \
            or c % groups or o % groups or c // groups != cg:
        raise InvalidArgument(f"conv2d: groups={groups!r} must divide C={c} and O={o} with "
                              f"C/groups = weight.shape[1] = {cg}")
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise InvalidArgument(f"conv2d: the kernel ({kh}x{kw}, dilation {dh}x{dw}) does not fit "
                              f"the padded input {h + 2 * ph}x{wd + 2 * pw}")
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        if bias.shape != (o,):
            raise InvalidArgument(f"conv2d: bias {bias.shape} must be [O] = [{o}]")
    cols = _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)  # [N, C, kh, kw, Ho*Wo]
    og = o // groups
    out = np.empty((n, o, ho * wo))
    total = Counters()
    for g in range(groups):
        wg = w[g * og:(g + 1) * og].reshape(og, cg * kh * kw)
        cg_cols = cols[:, g * cg:(g + 1) * cg].reshape(n, cg * kh * kw, ho * wo)
        for b in range(n):
            cinit = None if bias is None else np.repeat(bias[g * og:(g + 1) * og, None], ho * wo, 1)
            r = gemm(wg, cg_cols[b], datapath, C=cinit, counters=counters)
            out[b, g * og:(g + 1) * og] = r[0] if counters else r
            total = total + r[1] if counters else total
    y = out.reshape(n, o, ho, wo)
    return (y, total) if counters else y


def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c = x.shape[:2]
    cols = np.empty((n, c, kh, kw, ho, wo))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            cols[:, :, i, j] = xp[:, :, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw]
    return cols.reshape(n, c, kh, kw, ho * wo)

"""The public GEMM API: ``gemm``, ``dot`` and batched ``matmul`` through a :class:`Datapath`.

``gemm`` checks every argument before computing anything, brings the operands to their formats
(quantise or check), runs the accumulation record (per K-block with scales when the datapath
has a :class:`~lowbit.emulator.datapath.Scaling`), then rounds to the output format.
"""

from __future__ import annotations

import numpy as np

from ..formats import (FORMATS, BinaryFormat, IntFormat, IntOverflow, InvalidArgument,
                       Rounding)
from . import kernels_accumulate_api as api
from .counters import Counters, new_counter_array
from .datapath import (BinaryAccumulation, Chunked, Datapath, Exact, IntegerAccumulation,
                       OperandMode, Promoted, Sequential)
from .scratch import scratch

__all__ = ["gemm", "dot", "matmul"]

_FP32 = FORMATS["binary32"]


def gemm(A, B, datapath: Datapath, C=None, out: np.ndarray | None = None, counters: bool = False,
         *, scale_a=None, scale_b=None):
    """``round_out(C + A @ B)`` as the MAC array ``datapath`` computes it; float64 ``[M, N]``.

    NaN results are returned as one pattern, numpy's positive quiet NaN: IEEE 754 leaves the
    sign and payload of a NaN result unspecified, and the kernels (float32 fast paths, the
    generic one, x86's default NaN) would otherwise differ, so that results compare bit for bit
    whichever kernel ran.

    Args:
        A, B: ``[M, K]`` and ``[K, N]`` real arrays (never modified), quantised RNE to the operand
            formats or checked, as ``datapath.operand_mode`` says.
        datapath: the :class:`Datapath` record.
        C: optional ``[M, N]`` initial accumulator (brought to the accumulator format the same
            way; for integer accumulation, in units of the product's least significant bit).
        out: optional C-contiguous float64 (or float32, if the output format fits) ``[M, N]``.
        counters: also return a :class:`~lowbit.emulator.counters.Counters` record.
        scale_a, scale_b: scales of a datapath with ``scaling``: ``[M or 1, blocks]`` and
            ``[blocks, N or 1]`` (scalars and 1-D per-block vectors broadcast), finite.

    Example:
        >>> import numpy as np
        >>> from lowbit.emulator.datapath import Datapath, Sequential
        >>> dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="fp16"))
        >>> A = np.full((1, 4096), 1.0); B = np.full((4096, 1), 1.0)
        >>> float(gemm(A, B, dp)[0, 0])  # swamping: 2048 + 1 rounds back to 2048
        2048.0
    """
    job = _Job(A, B, datapath, C, out, scale_a, scale_b)
    cnt = new_counter_array() if counters else None
    result = _canonical_nan(job.compute(cnt))
    if out is not None:
        out[...] = result
        result = out
    return (result, Counters.from_array(cnt)) if counters else result


def dot(x, y, datapath: Datapath, counters: bool = False):
    """The inner product of two 1-D vectors through ``datapath`` (a float, or with counters).

    Example:
        >>> from lowbit.emulator.datapath import Datapath, Exact
        >>> dot([1e8, 1.0, -1e8], [1.0, 1.0, 1.0],
        ...     Datapath(a="binary32", b="binary32", accumulation=Exact()))
        1.0
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise InvalidArgument(f"dot: x {x.shape} and y {y.shape} must be 1-D of equal length")
    r = gemm(x[None, :], y[:, None], datapath, counters=counters)
    return (float(r[0][0, 0]), r[1]) if counters else float(r[0, 0])


def matmul(A, B, datapath: Datapath, counters: bool = False):
    """Batched ``A @ B`` (``[..., M, K] @ [..., K, N]``, leading dims broadcast like numpy).

    Example:
        >>> from lowbit.emulator.datapath import Datapath, Sequential
        >>> dp = Datapath(a="bf16", b="bf16", accumulation=Sequential(format="binary32"))
        >>> matmul(np.ones((2, 3, 4)), np.ones((4, 5)), dp).shape
        (2, 3, 5)
    """
    A, B = _array(A, "A"), _array(B, "B")
    if A.ndim < 2 or B.ndim < 2 or A.shape[-1] != B.shape[-2]:
        raise InvalidArgument(f"matmul: A {A.shape} and B {B.shape} must be [..., M, K] and "
                              "[..., K, N]")
    try:
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError as e:
        raise InvalidArgument(f"matmul: batch dims {A.shape[:-2]} and {B.shape[:-2]} do not "
                              "broadcast") from e
    A = np.broadcast_to(A, batch + A.shape[-2:])
    B = np.broadcast_to(B, batch + B.shape[-2:])
    out = np.empty(batch + (A.shape[-2], B.shape[-1]))
    total = Counters()
    for idx in np.ndindex(*batch):
        r = gemm(A[idx], B[idx], datapath, counters=counters)
        out[idx] = r[0] if counters else r
        total = total + r[1] if counters else total
    return (out, total) if counters else out


def _canonical_nan(x: np.ndarray) -> np.ndarray:
    """``x`` (the call's own result array) with every NaN replaced by ``np.nan``."""
    nan = np.isnan(x)
    if nan.any():
        x[nan] = np.nan
    return x


def _array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as e:
        raise InvalidArgument(f"{name}: cannot be read as a numeric array ({e})") from e
    if arr.dtype.kind not in "biuf":
        raise InvalidArgument(f"{name}: dtype {arr.dtype} is not numeric")
    return arr


class _Job:
    """One checked gemm call: operands in their formats, scales broadcast, ready to run."""

    def __init__(self, A, B, dp, C, out, scale_a, scale_b):
        if not isinstance(dp, Datapath):
            raise InvalidArgument(f"datapath={dp!r}: must be a lowbit Datapath record")
        A, B = _array(A, "A"), _array(B, "B")
        if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
            raise InvalidArgument(f"gemm: A {A.shape} and B {B.shape} must be [M, K] and [K, N]")
        self.dp, self.m, self.k, self.n = dp, A.shape[0], A.shape[1], B.shape[1]
        if C is not None:
            C = _array(C, "C").astype(np.float64)
            if C.shape != (self.m, self.n):
                raise InvalidArgument(f"C: shape {C.shape}; must be [M, N] = {(self.m, self.n)}")
        self._check_out(out)
        self._scales(scale_a, scale_b)
        # binary operands are binarised while packing: no float64 copy of +-1 values
        self.raw_signs = (isinstance(dp.accumulation, BinaryAccumulation) and dp.scaling is None
                          and dp.operand_mode == OperandMode.QUANTIZE)
        # float32 operands where the fast kernels may take them (they would convert back)
        f32 = dp.scaling is None and isinstance(dp.accumulation, (Sequential, Chunked))
        self.a = A if self.raw_signs else _bring(A, dp.a, dp.operand_mode, "A", f32)
        self.b = B if self.raw_signs else _bring(B, dp.b, dp.operand_mode, "B", f32)
        self.c = self._bring_c(C)

    def _check_out(self, out):
        if out is None:
            return
        if not isinstance(out, np.ndarray) or out.shape != (self.m, self.n) \
                or out.dtype not in (np.float32, np.float64) or not out.flags.c_contiguous:
            raise InvalidArgument(f"out: must be a C-contiguous float64/float32 array of shape "
                                  f"{(self.m, self.n)}")
        if out.dtype == np.float32 and not self.dp.output_format.fits_float32():
            raise InvalidArgument(f"out: float32 cannot hold every {self.dp.output_format.name} "
                                  "value; use float64")

    def _scales(self, scale_a, scale_b):
        sc = self.dp.scaling
        self.sa = self.sb = None
        if sc is None:
            if scale_a is not None or scale_b is not None:
                raise InvalidArgument("scale_a/scale_b: the datapath has no Scaling record")
            return
        block = sc.block_k if sc.block_k is not None else max(1, self.k)
        self.block, nb = block, max(1, -(-self.k // block))
        self.sa = _broadcast_scale(scale_a, (self.m, nb), "scale_a", row=True)
        self.sb = _broadcast_scale(scale_b, (nb, self.n), "scale_b", row=False)

    def _bring_c(self, C):
        if C is None:
            return None
        acc = self.dp.accumulation
        if isinstance(acc, IntegerAccumulation):
            if not np.all(C == np.round(C)):
                raise ValueError("C: integer accumulation takes integer values (product lsb units)")
            return C
        fmt = self.dp.scaling.accumulator.format if self.dp.scaling else self.dp.accumulator_format
        return _bring(C, fmt, self.dp.operand_mode, "C")

    def compute(self, cnt):
        dp = self.dp
        if dp.scaling is None:
            acc = self._accumulate(self.a, self.b, self.c, cnt)
            fmt = dp.accumulator_format
        else:
            acc = self._scaled(cnt)
            fmt = dp.scaling.accumulator.format
        if dp.output is not None and (dp.output != fmt or dp.output_rounding != Rounding.NEAREST_EVEN):
            acc = api.round_to(acc, dp.output, dp.output_rounding, cnt)
        return acc

    def _scaled(self, cnt):
        sc = self.dp.scaling
        acc = self.c.copy() if self.c is not None else np.zeros((self.m, self.n))
        nb = self.sa.shape[1]
        for q in range(nb):
            lo, hi = q * self.block, min(self.k, (q + 1) * self.block)
            part = self._accumulate(self.a[:, lo:hi], self.b[lo:hi], None, cnt, lo)
            api.add_partial(acc, part, self.sa[:, q], self.sb[q, :], sc.accumulator, q, nb, cnt)
        return acc

    def _accumulate(self, a, b, c, cnt, k0=0):
        dp, acc, prod = self.dp, self.dp.accumulation, self.dp.product
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        ops = (dp.a, dp.b)
        if isinstance(acc, Sequential):
            return api.run_chunked(a, b, c, cnt, None, acc, None, prod, k0, self.k, ops)
        if isinstance(acc, Chunked):
            return api.run_chunked(a, b, c, cnt, acc.chunk, acc.inner, acc.outer, prod, k0, self.k,
                                   ops)
        if isinstance(acc, Promoted):
            return api.run_promoted(a, b, c, cnt, acc, prod, ops)
        if isinstance(acc, Exact):
            return api.run_exact(a, b, c, cnt, acc, prod)
        if isinstance(acc, IntegerAccumulation):
            sa, sb = 2.0 ** dp.a.fraction_bits, 2.0 ** dp.b.fraction_bits
            if sa == sb == 1.0:  # integer codes already: no scaled copies
                return api.run_integer(a, b, c, cnt, acc)
            return api.run_integer(a * sa, b * sb, c, cnt, acc) / (sa * sb)
        if isinstance(acc, BinaryAccumulation):
            return api.run_binary(a, b, c, cnt, signs=self.raw_signs)
        if prod.format is not None:
            raise InvalidArgument(f"{type(acc).__name__}: rounded products are not supported by "
                                  "this accumulation record; use Product()")
        return acc.run(a, b, c, cnt)


def _bring(x: np.ndarray, fmt, mode: OperandMode, name: str, float32: bool = False
           ) -> np.ndarray:
    """``x`` as float64 values of ``fmt``: quantised RNE, or checked to be representable. The
    result lives in this thread's scratch buffer for ``name`` (it never leaves the call).
    ``float32``: float32 values instead where the float32 quantiser takes ``fmt`` (every value
    is then exactly a float32)."""
    x64 = np.asarray(x, dtype=np.float64)
    q = _native_quantize(x64, fmt, name)
    if q is None and float32:
        from .quantize import quantize_float32
        q = scratch(f"gemm.{name}.float32", x64.shape, np.float32)
        if not quantize_float32(np.ascontiguousarray(x64), fmt, q):
            q = None
    if q is None:
        from .quantize import quantize
        q = quantize(x64, fmt, out=scratch(f"gemm.{name}", x64.shape, np.float64))
    if mode == OperandMode.CHECK:
        bad = ~((q == x64) | (np.isnan(q) & np.isnan(x64)))
        if isinstance(fmt, BinaryFormat):
            bad = ~(np.abs(x64) == 1.0)
        if bad.any():
            idx = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"{name}[{idx}] = {x64[idx]!r} is not a {fmt.name} value "
                             "(operand_mode=CHECK); quantise it or use OperandMode.QUANTIZE")
    if isinstance(fmt, IntFormat) and not np.all(np.isfinite(q)):
        raise ValueError(f"{name}: NaN or infinite values have no {fmt.name} code")
    return np.ascontiguousarray(q)


def _native_quantize(x: np.ndarray, fmt, name: str) -> np.ndarray | None:
    """numpy's own correctly rounded casts where they equal ``quantize`` (RNE) and are faster:
    binary32, saturating integers without fraction bits, and +-1 signs; else None. (fp16 goes
    through ``quantize``, whose float32 kernels are several times faster than numpy's cast.)"""
    native = (fmt == _FP32 or isinstance(fmt, BinaryFormat)
              or isinstance(fmt, IntFormat) and fmt.fraction_bits == 0
              and fmt.overflow == IntOverflow.SATURATE)
    if not native or np.isnan(x).any():
        return None
    if fmt == _FP32:
        x32 = scratch(f"gemm.{name}.float32", x.shape, np.float32)
        q = scratch(f"gemm.{name}", x.shape, np.float64)
        with np.errstate(over="ignore"):
            np.copyto(x32, x, casting="same_kind")
        np.copyto(q, x32)
        return q
    if isinstance(fmt, BinaryFormat):
        return np.where(x >= 0.0, 1.0, -1.0)
    q = scratch(f"gemm.{name}", x.shape, np.float64)
    np.rint(x, out=q)
    np.maximum(q, fmt.qmin, out=q)
    np.minimum(q, fmt.qmax, out=q)
    q += 0.0  # integers have no -0
    return q


def _broadcast_scale(s, shape, name: str, row: bool) -> np.ndarray:
    if s is None:
        return np.ones(shape)
    arr = _array(s, name).astype(np.float64)
    if arr.ndim == 1:
        arr = arr[None, :] if row else arr[:, None]
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError as e:
        raise InvalidArgument(f"{name}: shape {np.shape(s)} does not broadcast to {shape} "
                              "([M or 1, blocks] for scale_a, [blocks, N or 1] for scale_b)") from e
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: scales must be finite")
    return np.ascontiguousarray(arr)

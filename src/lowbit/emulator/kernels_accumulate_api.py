"""The Python side of the accumulation records' ``run``: check arrays, build rounders, dispatch.

Kept apart from the records (``datapath.py``) so that importing the records compiles nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..formats import FORMATS, FloatFormat, InvalidArgument, Rounding
from .rng import seed_key

__all__ = ["rounder", "run_chunked", "run_promoted", "run_exact", "run_integer", "run_binary",
           "add_partial", "round_to", "check_operands"]

_EMPTY2 = np.zeros((1, 1))
_BINARY32 = FORMATS["binary32"]


def check_operands(a, b, c) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """float64 C-contiguous ``[M, K]``, ``[K, N]`` and ``[M, N]`` (or None), shapes checked."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if c is not None:
        c = np.ascontiguousarray(c, dtype=np.float64)
    _check_shapes(a, b, c)
    return a, b, c


def _check_shapes(a, b, c) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise InvalidArgument(f"run: a {a.shape} and b {b.shape} must be [M, K] and [K, N]")
    if c is not None and c.shape != (a.shape[0], b.shape[1]):
        raise InvalidArgument(f"run: c {c.shape} must be [M, N] = {(a.shape[0], b.shape[1])}")


@lru_cache(maxsize=256)
def rounder(fmt: FloatFormat, mode: Rounding, seed: int = 0, random_bits: int | None = None):
    """The kernel tuple of one rounding step to ``fmt`` under ``mode``."""
    from .kernels_accumulate import Rounder
    wide = int(fmt.mantissa_bits == 52)
    key = seed_key(seed) if mode == Rounding.STOCHASTIC else np.uint64(0)
    return Rounder(*fmt.kernel_params, maxval=float(fmt.max), minval=float(fmt.min_normal),
                   mode=int(mode), key=np.uint64(key), nbits=62 if random_bits is None
                   else int(random_bits), wide=wide)


def _seq_rounder(seq):
    return rounder(seq.format, seq.rounding, int(seq.seed), seq.random_bits)


def _rows(counters, m):
    return np.zeros((m, 4), np.int64), int(counters is not None)


def _flush(counters, rows):
    if counters is not None:
        counters += rows.sum(axis=0)


def run_chunked(a, b, c, counters, chunk, inner, outer, product=None, k0=0, ktot=None,
                operands=None):
    """Sequential (``chunk=None``) or chunked accumulation; ``product`` an optional Product;
    ``operands`` the operand formats, which lets a fast float32 kernel run where it is exact."""
    from .kernels_accumulate import chunked_kernel
    _check_shapes(a, b, c)
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n))
    rows, count = _rows(counters, m)
    if not count:  # float32 operands go to the fast kernels as they are
        c = None if c is None else np.ascontiguousarray(c, dtype=np.float64)
        if _fast(a, b, c, out, chunk, inner, outer, operands, k0, ktot, product):
            return out
    pr, has_prod = _product_rounder(product)
    a, b, c = check_operands(a, b, c)
    outer_r = _seq_rounder(outer) if outer is not None else _seq_rounder(inner)
    chunked_kernel(a, b, c if c is not None else _EMPTY2, out, int(c is not None), pr, has_prod,
                   _seq_rounder(inner), outer_r, int(chunk or 0), int(k0),
                   int(ktot if ktot is not None else a.shape[1]), rows, count)
    _flush(counters, rows)
    return out


#: The generic kernels' product rounder where products stay exact (never applied: flag 0).
_NO_PRODUCT_FORMAT = FloatFormat(name="_none", exponent_bits=8, mantissa_bits=23, bias=127)


def _product_rounder(product):
    if product is None or product.format is None:
        return rounder(_NO_PRODUCT_FORMAT, Rounding.NEAREST_EVEN), 0
    return rounder(product.format, product.rounding), 1


def _fast(a, b, c, out, chunk, inner, outer, operands, k0, ktot, product) -> bool:
    from .kernels_gemm_api import fast_run
    return fast_run(a, b, c, out, chunk, inner, outer, operands, k0, ktot, product)


def run_promoted(a, b, c, counters, rec, product=None, operands=None):
    """Promotion: ``inner`` over each K-slice of ``rec.interval``, partials added into ``outer``."""
    a, b, c = check_operands(a, b, c)
    m, n, kk = a.shape[0], b.shape[1], a.shape[1]
    acc = c.copy() if c is not None else np.zeros((m, n))
    nq = max(1, -(-kk // rec.interval))
    for q, start in enumerate(range(0, kk, rec.interval)):
        stop = min(kk, start + rec.interval)
        part = run_inner(rec.inner, a[:, start:stop], b[start:stop], counters, product, start, kk,
                         operands)
        add_partial(acc, part, None, None, rec.outer, q, nq, counters)
    return acc


def run_inner(inner, a, b, counters, product, k0, ktot, operands=None):
    """``inner.run`` on a K-slice, keeping global k indices for lowbit's own records."""
    from .datapath import Chunked, Sequential
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    if isinstance(inner, Sequential):
        return run_chunked(a, b, None, counters, None, inner, None, product, k0, ktot, operands)
    if isinstance(inner, Chunked):
        return run_chunked(a, b, None, counters, inner.chunk, inner.inner, inner.outer, product,
                           k0, ktot, operands)
    return inner.run(a, b, None, counters)


def add_partial(acc, part, sa, sb, outer, q, nq, counters):
    """``acc = round(acc + round(part * round(sa*sb)))`` in place, in ``outer``'s format.
    Unscaled binary32 round-to-nearest-even sums of float32 values without counters are the
    host's own float32 additions (IEEE: the exact sum rounded once), e.g. DeepSeek-V3's
    promotion into FP32."""
    from .kernels_accumulate import add_partial_kernel
    if (sa is None and sb is None and counters is None and outer.format == _BINARY32
            and outer.rounding == Rounding.NEAREST_EVEN):
        part32, sum32 = part.astype(np.float32), acc.astype(np.float32)
        if (np.array_equal(part32, part, equal_nan=True)
                and np.array_equal(sum32, acc, equal_nan=True)):  # (both binary32 values)
            with np.errstate(over="ignore", invalid="ignore"):  # inf, and NaN from inf - inf
                sum32 += part32
            acc[...] = sum32
            return
    m = acc.shape[0]
    rows, count = _rows(counters, m)
    has_scale = int(sa is not None)
    sa = np.ascontiguousarray(sa if sa is not None else np.ones(1), dtype=np.float64)
    sb = np.ascontiguousarray(sb if sb is not None else np.ones(1), dtype=np.float64)
    add_partial_kernel(acc, np.ascontiguousarray(part), sa, sb, has_scale, _seq_rounder(outer),
                       int(q), int(nq), rows, count)
    _flush(counters, rows)


def round_to(x, fmt, mode, counters, seed=0):
    """Elementwise rounding of a 2-D float64 array to ``fmt``."""
    from .kernels_accumulate import round_kernel
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    rows, count = _rows(counters, x.shape[0])
    round_kernel(x, out, rounder(fmt, mode, seed, None), rows, count)
    _flush(counters, rows)
    return out


def run_exact(a, b, c, counters, rec, product=None):
    from .kernels_accumulate_exact import exact_kernel
    a, b, c = check_operands(a, b, c)
    if product is not None and product.format is not None:
        raise InvalidArgument("Exact: rounded products are not supported here; use Product()")
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n))
    rows, count = _rows(counters, m)
    fmt = rec.format
    exact_kernel(a, np.ascontiguousarray(b.T), c if c is not None else _EMPTY2, out,
                 int(c is not None), fmt.kernel_params, float(fmt.max), float(fmt.min_normal),
                 int(rec.rounding), rows, count)
    _flush(counters, rows)
    return out


def _check_int(xi: np.ndarray, argument: str) -> float:
    """max |xi| of float64 ``xi``, after checking that it holds integer codes below 2^62."""
    from .kernels_int import integer_peak
    peak = integer_peak(np.ascontiguousarray(xi, dtype=np.float64))
    if not 0.0 <= peak < 2.0**62:  # a fraction, NaN or infinity gives -1; 2^62 and up, too big
        raise ValueError(f"{argument}: integer accumulation takes integer codes below 2^62")
    return peak


def _as_int(x) -> np.ndarray:
    """int64 copy of float64 ``x`` that ``_check_int`` accepted."""
    return np.ascontiguousarray(x.astype(np.int64))


def run_integer(a, b, c, counters, rec):
    from .kernels_accumulate_exact import integer_kernel
    a, b, c = check_operands(a, b, c)
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n))
    rows, count = _rows(counters, m)
    peaks = [_check_int(x, name) if x is not None else 0.0
             for x, name in ((a, "a"), (b, "b"), (c, "c"))]
    if not count and _integer_fast(a, b, c, out, rec, peaks):
        return out
    ci = _as_int(c) if c is not None else np.zeros((1, 1), np.int64)
    integer_kernel(_as_int(a), _as_int(b), ci, out, int(c is not None), int(rec.bits),
                   int(rec.overflow), rows, count)
    _flush(counters, rows)
    return out


#: Integer partial sums stay exact float32 values below this bound.
_F32_INTEGERS = 2.0 ** 24


def _integer_fast(a, b, c, out, rec, peaks) -> bool:
    """Integer accumulation through the float32 GEMM kernel when ``max|c| + K * max|a| * max|b|``
    stays below ``2^24`` and within the accumulator: every partial sum is then an integer that
    float32 holds exactly, and no MAC can wrap or saturate, so the result is the integer one
    (about ten times faster than the int64 kernel). ``peaks``: max |a|, |b|, |c| (0 without c).
    Returns False (nothing done) otherwise."""
    from .kernels_gemm_micro import NO_SR, block_shape, micro_kernel, pad, work_items
    bound = peaks[2] + a.shape[1] * peaks[0] * peaks[1]
    if not (bound < _F32_INTEGERS and bound <= 2.0 ** (rec.bits - 1) - 1):
        return False
    step = (0, 0, 0)
    a32, b32 = pad(a, b, *block_shape(step))
    zero = (0,) * 9
    micro_kernel(step, step)(a32, b32, c if c is not None else _EMPTY2, out, int(c is not None),
                             zero, zero, 0, NO_SR, np.zeros(work_items(a32, b32, step), np.uint32))
    np.add(out, 0.0, out=out)  # integers have no -0
    return True


def run_binary(a, b, c, counters, signs: bool = False):
    """XNOR-popcount GEMM of +-1 operands; with ``signs`` the operands are raw float32/64 data
    binarised while packing (sign(0) = +1, as ``quantize`` to the binary format does)."""
    from .kernels_gemm_xnor import pack_cols, pack_rows, xnor_gemm
    if signs:
        a, b = (np.ascontiguousarray(v if v.dtype in (np.float32, np.float64) else
                                     v.astype(np.float64)) for v in (a, b))
        _, _, c = check_operands(np.empty((a.shape[0], 0)), np.empty((0, b.shape[1])), c)
    else:
        a, b, c = check_operands(a, b, c)
    (pa, bad_a), (pb, bad_b) = pack_rows(a, signs), pack_cols(b, signs)
    for name, bad in (("a", bad_a), ("b", bad_b)):
        if bad:
            what = "NaN has no binary code" if signs else "binary accumulation takes +-1 values only"
            raise ValueError(f"{name}: {what}")
    out = np.empty((a.shape[0], b.shape[1]))
    xnor_gemm(pa, pb, a.shape[1], c if c is not None else _EMPTY2, out, int(c is not None))
    return out


def pack(x, pack_signs):
    words = np.empty((x.shape[0], max(1, -(-x.shape[1] // 64))), np.uint64)
    pack_signs(x, words)
    return words

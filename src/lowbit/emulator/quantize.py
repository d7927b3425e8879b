"""The public array API: quantize, encode, decode.

Each function checks its arguments once, allocates (or takes ``out=``) and dispatches to a numba
kernel; block formats go to :mod:`lowbit.emulator.block`.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..formats import (BinaryFormat, BlockFormat, FloatFormat, Format, IntFormat, InvalidArgument,
                       Overflow, Rounding, Specials, get_format)
from . import arguments as A
from .rng import seed_key
from .scratch import scratch

__all__ = ["quantize", "encode", "decode", "code_dtype"]


def quantize(x, fmt: Format | str, rounding: Rounding | str = Rounding.NEAREST_EVEN, *,
             seed: int | None = None, random_bits: int | None = None,
             overflow: Overflow | str | None = None, offset: int = 0,
             out: np.ndarray | None = None):
    """Round every element of ``x`` to the nearest value of ``fmt`` under ``rounding``.

    Args:
        x: array-like of float16/32/64 (integers are converted to float64); never modified.
        fmt: a format record or a name from ``lowbit.FORMATS``.
        rounding: a :class:`~lowbit.Rounding` mode (or its name).
        seed: key of the counter-based random stream for ``STOCHASTIC`` (``None``: fresh entropy).
            Element ``i`` uses the bits of index ``offset + i``, whatever the threads or chunking.
        random_bits: random bits per stochastic decision, 1..62 (8 is NVIDIA's ``cvt.rs``);
            ``None`` uses 62: exact whenever at most 62 bits are dropped, else off by < 2^-62
            in probability (see docs/rounding.md).
        overflow: replaces the format's :class:`~lowbit.Overflow` policy for this call
            (float formats only).
        offset: index of the first element in the random stream.
        out: optional C-contiguous result array of the right shape and dtype.

    Returns:
        An array of ``x``'s shape: float32 for float16/32 input when every value of ``fmt`` is a
        float32, else float64. Block formats return the dequantised values.

    Example:
        >>> import numpy as np, lowbit
        >>> lowbit.quantize(np.array([1.0625, 300.0, -1e-9], np.float32), "e4m3fn").tolist()
        [1.0, 288.0, -0.0]
        >>> lowbit.quantize(np.array([3.0]), "fp4_r4_odd", lowbit.Rounding.TOWARD_ZERO).tolist()
        [2.0]
    """
    fmt = get_format(fmt)
    arr = A.as_float_array(x)
    mode = A.check_rounding(rounding)
    if isinstance(fmt, BlockFormat):
        from .block import quantize_block
        _check_block_extras(fmt, overflow, offset)
        return quantize_block(arr, fmt, mode, seed=seed, random_bits=random_bits, out=out)
    job = _Job(arr, fmt, mode, seed, random_bits, overflow, offset)
    result = A.check_out(out, arr.shape, A.output_dtype(arr, job.fmt))
    job.run(values=result.reshape(-1))
    return result


def quantize_float32(x: np.ndarray, fmt: Format, out: np.ndarray) -> bool:
    """Internal: RNE of float64 ``x`` to ``fmt`` written as float32 into ``out`` (same shape,
    C-contiguous) where the float32 kernels take it, and True; else False with nothing done.
    GEMM operands use it to skip a float64 copy that the fast kernels would convert back."""
    if not isinstance(fmt, FloatFormat) or x.dtype != np.float64:
        return False
    job = _Job(x, fmt, Rounding.NEAREST_EVEN, None, None, None, 0)
    if not job.float32_path():
        return False
    job.run(values=out.reshape(-1))
    return True


def encode(x, fmt: Format | str, rounding: Rounding | str = Rounding.NEAREST_EVEN, *,
           seed: int | None = None, random_bits: int | None = None,
           overflow: Overflow | str | None = None, offset: int = 0):
    """Codes of ``x`` rounded to ``fmt``: unsigned integers of the smallest width that holds them.

    Block formats return a :class:`~lowbit.BlockCodes` (element codes, scale codes and the FP32
    tensor scale where the format has one). NaN in a format with no NaN code raises ``ValueError``.

    Example:
        >>> import numpy as np, lowbit
        >>> lowbit.encode(np.array([1.0, -448.0, np.nan]), "e4m3fn").tolist()
        [56, 254, 127]
    """
    fmt = get_format(fmt)
    arr = A.as_float_array(x)
    mode = A.check_rounding(rounding)
    if isinstance(fmt, BlockFormat):
        from .block import encode_block
        _check_block_extras(fmt, overflow, offset)
        return encode_block(arr, fmt, mode, seed=seed, random_bits=random_bits)
    job = _Job(arr, fmt, mode, seed, random_bits, overflow, offset)
    codes = np.empty(arr.shape, dtype=code_dtype(job.fmt))
    bad = job.run(codes=codes.reshape(-1))
    if bad:
        raise ValueError(f"encode: {bad} element(s) of x are NaN or infinite, which {fmt.name} "
                         "cannot encode (it has no such code); quantize() passes them through")
    return codes


def decode(codes, fmt: Format | str):
    """Values (float64; float32 where every value fits) of integer ``codes`` of ``fmt``.

    Block formats take the :class:`~lowbit.BlockCodes` that :func:`encode` returned.

    Example:
        >>> import numpy as np, lowbit
        >>> lowbit.decode(np.array([0x38, 0x7E, 0x7F], np.uint8), "e4m3fn").tolist()
        [1.0, 448.0, nan]
    """
    fmt = get_format(fmt)
    if isinstance(fmt, BlockFormat):
        from .block import decode_block
        return decode_block(codes, fmt)
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"codes: dtype {arr.dtype}; allowed: an integer dtype")
    flat = arr.reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= fmt.code_count):
        raise InvalidArgument(f"codes: values must lie in [0, {fmt.code_count - 1}] for {fmt.name}")
    dtype = np.float32 if fmt.fits_float32() else np.float64
    if fmt.bits <= 16:
        return _decode_table(fmt).astype(dtype)[arr]
    from .kernels_float import decode_float
    out = np.empty(flat.shape, dtype=dtype)
    decode_float(flat.astype(np.int64), out, fmt.kernel_params)
    return out.reshape(arr.shape)


def _check_block_extras(fmt: BlockFormat, overflow, offset) -> None:
    """Block formats fix their element overflow (saturate) and key random bits by flat index."""
    if overflow is not None:
        raise InvalidArgument(f"overflow={overflow!r}: block format {fmt.name} always saturates "
                              "its elements (OCP MX, NVFP4); leave overflow=None")
    if offset != 0:
        raise InvalidArgument(f"offset={offset!r}: block format {fmt.name} keys random bits by "
                              "the flat element index; leave offset=0")


def code_dtype(fmt: Format) -> np.dtype:
    bits = fmt.bits
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.dtype(dt).itemsize * 8:
            return np.dtype(dt)
    raise AssertionError(bits)


class _Job:
    """One checked call: the resolved format, mode and random stream, ready to run a kernel."""

    def __init__(self, arr, fmt, mode, seed, random_bits, overflow, offset):
        if overflow is not None and not isinstance(fmt, FloatFormat):
            raise InvalidArgument(f"overflow={overflow!r}: only float formats take an overflow "
                                  f"policy; {fmt.name} is a {type(fmt).__name__}")
        self.fmt = A.resolve_overflow(fmt, overflow) if isinstance(fmt, FloatFormat) else fmt
        self.mode = mode
        self.nbits = A.check_random_bits(random_bits)
        self.offset = A.check_offset(offset)
        stochastic = mode == Rounding.STOCHASTIC
        if seed is not None or stochastic:
            key = seed_key(seed)
        self.key = key if stochastic else np.uint64(0)
        if isinstance(fmt, BinaryFormat) and mode not in (Rounding.NEAREST_EVEN, Rounding.STOCHASTIC):
            raise InvalidArgument(f"rounding={mode.name}: the binary format takes NEAREST_EVEN "
                                  "(sign, with sign(0) = +1) or STOCHASTIC (hard-sigmoid)")
        self.x = np.ascontiguousarray(arr).reshape(-1)
        if self.x.dtype == np.float16:
            self.x = self.x.astype(np.float32)

    def float32_path(self) -> bool:
        """Whether float64 input takes the float32 kernels (``_float32_input``)."""
        fmt = self.fmt
        return (self.mode != Rounding.STOCHASTIC and isinstance(fmt, FloatFormat)
                and _fast_f32(fmt) and fmt.mantissa_bits <= 21
                and (fmt.binary_exponent_range[1] <= 126 or self.mode != Rounding.TO_ODD))

    def _float32_input(self) -> tuple[np.ndarray, bool]:
        """The input as float32 where the float32 kernels give the float64 result: float64 input
        rounded to odd at 24 bits keeps what any deterministic rounding to at most 21 bits needs.
        Beyond float32's range it becomes +-float32's largest value, which is beyond the
        format's overflow threshold too (at most ``(2 - 2^-22) * 2^127`` for 21 bits and
        ``emax = 127``), so it overflows, or saturates, as the input would; except to odd, whose
        threshold is ``2^(emax + 1)``: with ``emax = 127`` float32 cannot tell inputs past it,
        so those formats take the float64 kernel in that mode. Returns the array and whether it
        is a private copy."""
        x = self.x
        if x.dtype != np.float64 or not self.float32_path():
            return x, False
        from .kernels_f32 import to_f32_odd
        x32 = scratch("quantize.float32", x.shape, np.float32)  # never leaves the call
        to_f32_odd(x, x32)
        return x32, True

    def run(self, values=None, codes=None) -> int:
        fmt, want_codes = self.fmt, codes is not None
        values = values if values is not None else np.empty(0)
        codes = codes if codes is not None else np.empty(0, np.uint8)
        common = (int(self.mode), self.key, self.offset, self.nbits)
        if isinstance(fmt, BinaryFormat):
            from . import kernels_int as K
            stochastic = self.mode == Rounding.STOCHASTIC
            if want_codes:
                return K.encode_binary(self.x, codes, stochastic, self.key, self.offset)
            return K.quantize_binary(self.x, values, stochastic, self.key, self.offset)
        if isinstance(fmt, IntFormat):
            from . import kernels_int as K
            if want_codes:
                return K.encode_int(self.x, codes, fmt.kernel_params, *common)
            return K.quantize_int(self.x, values, fmt.kernel_params, *common)
        if fmt.radix != 2:
            mags, mcodes, p = _table(fmt)
            if _closed_form_radix4(fmt):
                from . import kernels_radix as K
                kmin = 1 - fmt.bias
                kmax = int(round((np.log2(float(fmt.max)) - fmt.exponent_shift) / 2))
                grid = (fmt.exponent_shift, kmin, kmax, p)
                if want_codes:
                    return K.encode_radix4(self.x, codes, *grid, *common)
                return K.quantize_radix4(self.x, values, *grid, *common)
            from . import kernels_table as T
            if want_codes:
                return T.encode_table(self.x, codes, mags, mcodes, p, *common)
            return T.quantize_table(self.x, values, mags, mcodes, p, *common)
        maxval, minval = float(fmt.max), float(fmt.min_normal)
        x, owned = self._float32_input()
        if want_codes and x.dtype == np.float32 and _fast_f32(fmt):
            from .kernels_f32 import codes_from_f32, quantize_f32
            v = x if owned else np.empty(x.shape, np.float32)
            quantize_f32(x, v, *_f32_params(fmt, self.mode), *_f32_common(fmt, common))
            kp = fmt.kernel_params
            return codes_from_f32(v, codes, kp.mantissa_bits, kp.emin, kp.bits, kp.nan_code,
                                  kp.inf_code, kp.negative_zero)
        if want_codes:
            from .kernels_float import encode_float
            return encode_float(self.x, codes, fmt.kernel_params, maxval, minval, *common)
        if x.dtype == np.float32 and _fast_f32(fmt) and (owned or values.dtype == np.float32):
            from .kernels_f32 import quantize_f32
            v = values if values.dtype == np.float32 else x
            quantize_f32(x, v, *_f32_params(fmt, self.mode), *_f32_common(fmt, common))
            if v is not values:
                values[:] = v
            return 0
        from .kernels_float import quantize_float
        quantize_float(self.x, values, fmt.kernel_params, maxval, minval, *common)
        return 0


_F32_INF, _F32_NAN = 0x7F800000, 0x7FC00000


def _f32_bits(value: Fraction) -> int:
    return int(np.array(float(value), dtype=np.float32).view(np.uint32))


def _fast_f32(fmt: FloatFormat) -> bool:
    """Whether the float32 bit-pattern kernel applies (see kernels_f32)."""
    emin, _ = fmt.binary_exponent_range
    return (fmt.radix == 2 and fmt.signed and fmt.zero and fmt.mantissa_bits <= 22
            and emin >= -126 and fmt.fits_float32())


def _f32_common(fmt: FloatFormat, common: tuple) -> tuple:
    """The float32 kernel's (mode, key, offset, nbits): NEAREST_EVEN becomes the pseudo mode of
    the shorter magic-constant rounder where its constants fit float32."""
    from .llvm_round import NEAREST_EVEN_MAGIC, magic_rne_ok
    if common[0] == int(Rounding.NEAREST_EVEN) and magic_rne_ok(
            fmt.mantissa_bits, fmt.binary_exponent_range[1], fmt.subnormals):
        return (NEAREST_EVEN_MAGIC,) + common[1:]
    return common


@lru_cache(maxsize=None)
def _f32_params(fmt: FloatFormat, mode: Rounding) -> tuple:
    emin, _ = fmt.binary_exponent_range
    max_bits = _f32_bits(fmt.max)
    policy = fmt.overflow

    def overflow_bits(toward_zero: bool) -> int:
        if policy in (Overflow.SATURATE, Overflow.SATURATE_KEEP_INF) or toward_zero:
            return max_bits
        return _F32_NAN if policy == Overflow.NAN else _F32_INF

    over_pos = overflow_bits(mode in (Rounding.TOWARD_ZERO, Rounding.DOWN))
    over_neg = overflow_bits(mode in (Rounding.TOWARD_ZERO, Rounding.UP))
    inf_bits = {Overflow.SATURATE: max_bits, Overflow.NAN: _F32_NAN}.get(policy, _F32_INF)
    return (fmt.mantissa_bits, emin, int(fmt.subnormals), max_bits, over_pos, over_neg, inf_bits,
            _f32_bits(fmt.min_positive), int(fmt.negative_zero))


def _closed_form_radix4(fmt: FloatFormat) -> bool:
    """Mantissa-less radix-4 formats with a zero and no flushing quirks: the closed-form kernel."""
    return (fmt.radix == 4 and fmt.mantissa_bits == 0 and fmt.zero
            and fmt.specials in (Specials.NONE, Specials.FN))


@lru_cache(maxsize=None)
def _decode_table(fmt: Format) -> np.ndarray:
    return fmt.decode_table()


@lru_cache(maxsize=None)
def _table(fmt: FloatFormat):
    """Sorted distinct magnitudes with their codes, plus the sentinel beyond max."""
    seen: dict[Fraction, int] = {}
    for code in range(1 << fmt.magnitude_bits):
        v = fmt.magnitude_value(code)
        if v is not None and v not in seen:
            seen[v] = code
    mags = sorted(seen)
    top = fmt.max_magnitude_code
    m = fmt.mantissa_bits
    e, f = top >> m, top & ((1 << m) - 1)
    if f + 1 < (1 << m):
        beyond = fmt.magnitude_value(top) + Fraction(1, 1 << m) * fmt._scale(e - fmt.bias)
    else:
        beyond = fmt._scale(e + 1 - fmt.bias)
    values = np.array([float(v) for v in mags] + [float(beyond)])
    codes = np.array([seen[v] for v in mags] + [-1], dtype=np.int64)
    p = (int(fmt.signed), m, int(fmt.overflow), fmt.sign_mask, int(fmt.negative_zero),
         fmt.nan_code if fmt.nan_code is not None else -1,
         fmt.inf_code if fmt.inf_code is not None else -1)
    return values, codes, p

"""Tensor-core block FMA ("fused multi-term") accumulation: the published NVIDIA model as data.

The model (Fasi, Higham, Mikaitis & Pranesh, PeerJ CS 7:e330, 2021; Khattak & Mikaitis,
"Accurate Models of NVIDIA Tensor Cores", arXiv:2512.07004) of one block FMA
``d = a_1 b_1 + ... + a_n b_n + c``:

1. NaN anywhere (IEEE products: inf * 0 is NaN) gives NaN; +inf and -inf together give NaN;
   otherwise any infinity gives that infinity. This is decided over the whole dot product.
2. Products with a zero factor are dropped; ``c = 0`` is excluded from the exponent maximum.
3. Each operand is ``sig * 2^e`` with ``e = max(floor(log2|x|), emin)`` of its format; the product
   significand ``P = sig_a sig_b`` in (0, 4) is not renormalised: ``I = P * 2^23``, exponent
   ``e_a + e_b``. ``c`` is decoded in the binary32 frame (``e >= -126``, 23 fraction bits).
4. ``E = max(all exponents, min_exponent)``; every addend is scaled by ``2^extra_bits`` (truncated
   when negative) and shifted right by ``E - e_i`` under :class:`Alignment` (hardware: truncation).
5. The signed sum is exact (``carry_bits`` optionally limits it), then normalised once and rounded
   once (``TOWARD_ZERO`` or ``NEAREST_EVEN``) to ``min(output.mantissa_bits, 23 + extra_bits)``
   fraction bits, with ``output``'s exponent range; subnormal results are kept; overflow gives
   +-inf whatever the rounding (as the published model does). An exact zero sum is +0.
6. K is split into blocks of ``terms`` chained in ascending order: ``d <- BFMA(block, c=d)``; the
   initial ``c`` is first rounded to nearest even into ``output``.

:class:`Pattern` ``INTERLEAVED`` is the B200 FP8 ``mma.sync.m16n8k32`` path: each block of
``terms`` K-indices is split into ``{i : i mod 4 in {0, 1}}`` and ``{i mod 4 in {2, 3}}``;
``d1 = BFMA(first half, 0)``, ``d2 = BFMA(second half, d1)``, then ``d = RNE(d2 + d)``, one
correctly rounded addition.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from ..formats import FloatFormat, InvalidArgument, Rounding, Specials, get_format
from . import kernels_fused as K
from . import kernels_fused_vec as KV

__all__ = ["Alignment", "Pattern", "FusedAccumulation", "InvalidAccumulationError"]


class InvalidAccumulationError(ValueError):
    """Fields of an accumulation record that contradict each other or are out of range."""


class Alignment(enum.IntEnum):
    """What happens to the bits of an addend shifted below the alignment width.

    * ``TRUNCATE``: dropped (NVIDIA tensor cores: no guard, round or sticky bits).
    * ``NEAREST_EVEN``: each aligned addend is rounded to nearest even at the alignment width.
    * ``STICKY``: truncated, plus one sticky bit per addend (the OR of its dropped bits) appended
      below the alignment width and summed with the addends (the MATLAB model's ``stkbitenabled``).
    """

    TRUNCATE = 0
    NEAREST_EVEN = 1
    STICKY = 2


class Pattern(enum.IntEnum):
    """How K is cut into block FMAs.

    * ``CONTIGUOUS``: blocks of ``terms`` consecutive K-indices, chained in ascending order.
    * ``INTERLEAVED``: B200 FP8 through ``mma.sync`` (MATLAB-tensor-core commit 109e412,
      ``inter_pattern = 1``): two interleaved half blocks, then one RNE addition of the block
      result to the accumulator (see the module docstring).
    """

    CONTIGUOUS = 0
    INTERLEAVED = 1


_PARALLEL_MACS = 1 << 20  #: smaller products run on the calling thread (no thread start-up)
_ROUNDINGS = (Rounding.TOWARD_ZERO, Rounding.NEAREST_EVEN)
_NO_MIN_EXP = -900  #: below any product exponent of binary32-range operands (>= -298)


@dataclass(frozen=True, kw_only=True)
class FusedAccumulation:
    """A tensor-core block FMA accumulation (module docstring: the model, step by step).

    Example:
        >>> import numpy as np
        >>> from lowbit import Rounding
        >>> from lowbit.emulator.fused import FusedAccumulation
        >>> acc = FusedAccumulation(terms=4, extra_bits=0, output="binary32",
        ...                         rounding=Rounding.TOWARD_ZERO, a_format="fp16", b_format="fp16")
        >>> a = np.array([[1.0, 0.0, 0.0, 0.0]]); b = np.array([[1.0], [0.0], [0.0], [0.0]])
        >>> acc.run(a, b, np.array([[-(1 - 2.0**-24)]]), None).tolist()  # V100 probe D1
        [[1.1920928955078125e-07]]
    """

    terms: int  #: products per block FMA
    extra_bits: int  #: extra alignment bits ``neab`` beyond 23 fraction bits (negative: fewer)
    output: FloatFormat  #: format of the block result and of the accumulator (record or name)
    rounding: Rounding  #: of each block result: TOWARD_ZERO or NEAREST_EVEN
    alignment: Alignment = Alignment.TRUNCATE
    carry_bits: int | None = None  #: None: exact sum; else |sum| < 2^(1 + carry_bits) at E
    min_exponent: int | None = None  #: the model's ``min_exp_limit`` on E; None: no limit
    input_subnormals: bool = True  #: False: subnormal operands are flushed to zero
    output_subnormals: bool = True  #: False: results below the smallest normal become +-0
    pattern: Pattern = Pattern.CONTIGUOUS
    a_format: FloatFormat | None = field(default=None)  #: operand format of A (None: binary32)
    b_format: FloatFormat | None = field(default=None)  #: operand format of B (None: binary32)

    def __post_init__(self) -> None:
        _int("terms", self.terms, 1, 1 << 20)
        _int("extra_bits", self.extra_bits, -22, 24)
        object.__setattr__(self, "output", _output(self.output))
        for name in ("a_format", "b_format"):
            object.__setattr__(self, name, _operand(name, getattr(self, name)))
        object.__setattr__(self, "rounding", _enum("rounding", self.rounding, Rounding))
        if self.rounding not in _ROUNDINGS:
            raise InvalidAccumulationError(
                f"rounding={self.rounding.name}: a block FMA rounds its result with TOWARD_ZERO "
                "or NEAREST_EVEN")
        object.__setattr__(self, "alignment", _enum("alignment", self.alignment, Alignment))
        object.__setattr__(self, "pattern", _enum("pattern", self.pattern, Pattern))
        if self.carry_bits is not None:
            _int("carry_bits", self.carry_bits, 0, 30)
        if self.min_exponent is not None:
            _int("min_exponent", self.min_exponent, -(1 << 16), 1 << 16)
        for name in ("input_subnormals", "output_subnormals"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgument(f"{name}={getattr(self, name)!r}: must be True or False")
        if self.pattern == Pattern.INTERLEAVED and self.terms % 4:
            raise InvalidAccumulationError(
                f"terms={self.terms} with pattern=INTERLEAVED: must be a multiple of 4")
        if self.width + 3 + (self.terms + 1).bit_length() > 53:
            raise InvalidAccumulationError(
                f"terms={self.terms}, extra_bits={self.extra_bits}: the exact sum needs "
                f"{self.width + 3 + (self.terms + 1).bit_length()} bits; at most 53 are emulated")

    # ----------------------------------------------------------------- derived facts
    @property
    def width(self) -> int:
        """Fraction bits of the aligned addends: ``23 + extra_bits``."""
        return K.FRAME_BITS + self.extra_bits

    @property
    def precision(self) -> int:
        """Fraction bits of a block result: ``min(output.mantissa_bits, 23 + extra_bits)``."""
        return min(self.output.mantissa_bits, self.width)

    @property
    def operand_formats(self) -> tuple[FloatFormat, FloatFormat]:
        b32 = get_format("binary32")
        return (self.a_format or b32, self.b_format or b32)

    def kernel_params(self) -> K.FusedParams:
        """The integers the kernels take."""
        fa, fb = self.operand_formats
        emin, emax = self.output.binary_exponent_range
        shift = self.width - fa.mantissa_bits - fb.mantissa_bits
        half = self.pattern == Pattern.INTERLEAVED
        return K.FusedParams(
            terms=self.terms // 2 if half else self.terms, width=self.width,
            extra=self.extra_bits,
            post=max(-shift, 0), alignment=int(self.alignment),
            carry=-1 if self.carry_bits is None else 1 + self.carry_bits,
            min_exp=max(_NO_MIN_EXP, -900 if self.min_exponent is None else self.min_exponent),
            p=self.precision, emin=emin, emax=emax,
            rne=int(self.rounding == Rounding.NEAREST_EVEN),
            subnormals=int(self.output_subnormals), pattern=int(self.pattern))

    # ----------------------------------------------------------------- running it
    def run(self, a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None,
            counters: np.ndarray | None = None) -> np.ndarray:
        """``a @ b + c`` through chained block FMAs; float64 ``[M, N]`` of ``output`` values.

        ``a`` is ``[M, K]``, ``b`` ``[K, N]`` (values of ``a_format``/``b_format``; anything else
        raises ``ValueError`` naming the element), ``c`` ``[M, N]`` or None (zero). ``counters``
        (int64, length 4) receives overflows (0), flushes to zero (2) and products lost entirely
        in alignment (3). Inputs are never modified; results do not depend on the thread count.
        """
        a, b, c = _matrices(a, b, c)
        _check_counters(counters)
        c = self._entry_accumulator(c)
        if self.pattern == Pattern.INTERLEAVED:
            a, b = _interleave(a, b, self.terms)
        fa, fb = self.operand_formats
        out = np.empty(c.shape, dtype=np.float64)
        parallel = c.size * a.shape[1] >= _PARALLEL_MACS
        if self.alignment == Alignment.TRUNCATE and self.carry_bits is None:  # the hardware path
            kernel = KV.gemm_vec if parallel else KV.gemm_vec_serial
            prm, count = self.kernel_params(), int(counters is not None)
            flip = _transpose_pays(*c.shape)  # then c^T = b^T a^T: the same chains
            va, ea, flags_a = self._split_fast(a, fa, "a", columns=False, transposed=flip)
            vb, eb, flags_b = self._split_fast(b, fb, "b", columns=True, transposed=flip)
            if flip:
                out_t = np.empty(c.shape[::-1])
                over, flush, lost = kernel(vb, eb, va, ea, b.T, a.T, np.ascontiguousarray(c.T),
                                           flags_b, flags_a, prm, count, out_t)
                out[...] = out_t.T
            else:
                over, flush, lost = kernel(va, ea, vb, eb, a, b, c, flags_a, flags_b, prm, count,
                                           out)
        else:
            shift = self.width - fa.mantissa_bits - fb.mantissa_bits
            va, sa, ea, flags_a = self._split(a, fa, max(shift, 0), "a", transposed=False)
            bt = np.ascontiguousarray(b.T)
            vb, sb, eb, flags_b = self._split(bt, fb, 0, "b", transposed=True)
            kernel = K.gemm_fused if parallel else K.gemm_fused_serial
            over, flush, lost = kernel(va, sa, ea, vb, sb, eb, a, bt, c, flags_a, flags_b,
                                       self.kernel_params(), out)
        if counters is not None:
            counters[0] += over
            counters[2] += flush
            counters[3] += lost
        return out

    def _entry_accumulator(self, c: np.ndarray) -> np.ndarray:
        if self.output == get_format("binary32"):
            with np.errstate(over="ignore", invalid="ignore"):  # beyond max: inf, as RNE gives
                return c.astype(np.float32).astype(np.float64)
        from .quantize import quantize
        return np.asarray(quantize(c, self.output, Rounding.NEAREST_EVEN), dtype=np.float64)

    def _split_fast(self, x: np.ndarray, fmt: FloatFormat, name: str, columns: bool,
                    transposed: bool = False):
        """Values, int32 exponents and flags (per row, or per column if ``columns``) for the
        vectorised kernels, laid out as ``x`` or, if ``transposed``, as ``x.T``; anything
        unusual goes through :meth:`_split` (which reports it)."""
        shape = x.shape[::-1] if transposed else x.shape
        val = np.empty(shape, dtype=np.float64)
        exp = np.empty(shape, dtype=np.int32)
        emin, emax = fmt.binary_exponent_range
        if KV.split(x, emin, emax, fmt.mantissa_bits, float(fmt.max), int(self.input_subnormals),
                    val, exp, transposed):
            rows = np.ascontiguousarray(x.T) if columns else x
            return val, exp, self._split(rows, fmt, 0, name, transposed=columns)[3]
        return val, exp, np.full(x.shape[1] if columns else x.shape[0], -1, dtype=np.int64)

    def _split(self, x: np.ndarray, fmt: FloatFormat, pre: int, name: str, transposed: bool):
        rows, cols = x.shape
        sig = np.empty((rows, cols), dtype=np.int64)
        exp = np.empty((rows, cols), dtype=np.int32)
        val = np.empty((rows, cols), dtype=np.float64)
        bad = np.empty(rows, dtype=np.int64)
        emin, emax = fmt.binary_exponent_range
        K.decompose(x, emin, emax, fmt.mantissa_bits, float(fmt.max), pre,
                    int(self.input_subnormals), sig, exp, val, bad)
        hit = np.flatnonzero(bad >= 0)
        if hit.size:
            r = int(hit[0])
            k = int(bad[r])
            where = (k, r) if transposed else (r, k)
            raise ValueError(f"{name}[{where[0]}, {where[1]}] = {x[r, k]!r} is not a value of the "
                             f"operand format {fmt.name}; quantize the operands first")
        return val, sig, exp, bad


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{name}={value!r}: must be an int in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise InvalidAccumulationError(f"{name}={value!r}: must be in [{lo}, {hi}]")


def _enum(name: str, value: object, kind: type[enum.IntEnum]) -> enum.IntEnum:
    try:
        return kind[value.upper()] if isinstance(value, str) else kind(value)
    except (KeyError, ValueError) as e:
        allowed = ", ".join(m.name for m in kind)
        raise InvalidArgument(f"{name}={value!r}: allowed: {kind.__name__}.{{{allowed}}}") from e


def _output(fmt: object) -> FloatFormat:
    fmt = get_format(fmt)
    if not isinstance(fmt, FloatFormat) or fmt.radix != 2:
        raise InvalidAccumulationError(f"output={getattr(fmt, 'name', fmt)!r}: must be a radix-2 "
                                       "FloatFormat (binary32, fp16, ...)")
    if fmt.specials != Specials.IEEE or not fmt.fits_float32():
        raise InvalidAccumulationError(
            f"output={fmt.name}: the block FMA model needs IEEE infinities (overflow gives +-inf) "
            "and values inside binary32 (c is decoded in the binary32 frame)")
    return fmt


def _operand(name: str, fmt: object) -> FloatFormat | None:
    if fmt is None:
        return None
    fmt = get_format(fmt)
    if not isinstance(fmt, FloatFormat) or fmt.radix != 2 or not fmt.fits_float32():
        raise InvalidAccumulationError(f"{name}={getattr(fmt, 'name', fmt)!r}: must be a radix-2 "
                                       "FloatFormat whose values are binary32 values")
    return fmt


def _as_matrix(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub" or arr.ndim != 2:
        raise InvalidArgument(f"{name}: needs a 2-D numeric array, got {arr.dtype} of shape "
                              f"{arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _transpose_pays(m: int, n: int) -> bool:
    """Whether the hardware path runs faster as ``c^T = b^T a^T``: its inner loops run along a
    strip of up to ``KV.STRIP`` columns of the output, which few columns leave short. Every
    output is the same chain of block FMAs either way (products and exponent sums commute, and
    the blocks split K alike), so results and counters do not change. H100 FP8 at K = 256 to
    512 (ms, direct -> transposed): 128x10 1.14 -> 0.47, 2048x16 15.3 -> 8.8, 128x32 1.17 ->
    0.93, 256x64 2.89 -> 2.31, 512x100 3.59 -> 3.48."""
    return n < KV.STRIP // 2 and m >= 2 * n


def _matrices(a: object, b: object, c: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = _as_matrix(a, "a"), _as_matrix(b, "b")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a {a.shape} and b {b.shape}: inner dimensions differ")
    shape = (a.shape[0], b.shape[1])
    if c is None:
        return a, b, np.zeros(shape)
    c = _as_matrix(c, "c")
    if c.shape != shape:
        raise ValueError(f"c: shape {c.shape}, needs {shape}")
    return a, b, c


def _check_counters(counters: object) -> None:
    if counters is None:
        return
    if not isinstance(counters, np.ndarray) or counters.dtype != np.int64 \
            or counters.shape != (4,):
        raise InvalidArgument("counters: must be None or an int64 numpy array of length 4")


def _interleave(a: np.ndarray, b: np.ndarray, terms: int) -> tuple[np.ndarray, np.ndarray]:
    """K padded to a multiple of ``terms`` and reordered so each block is [half 1, half 2]."""
    k = a.shape[1]
    kk = -(-k // terms) * terms
    if kk != k:
        a = np.concatenate([a, np.zeros((a.shape[0], kk - k))], axis=1)
        b = np.concatenate([b, np.zeros((kk - k, b.shape[1]))], axis=0)
    i = np.arange(kk)
    order = np.lexsort((i, (i % 4) >= 2, i // terms))
    return np.ascontiguousarray(a[:, order]), np.ascontiguousarray(b[order])

"""``lowbit demo``: quantise a real tensor to every catalogue format and print the error of each.

The tensor is the public-domain Grace Hopper portrait shipped in :mod:`lowbit.data` (150 x 128
greyscale pixels), standardised to zero mean and unit variance in float32: real data, no download,
same numbers on every run. Unsigned formats get ``|x|``.

Example:
    >>> from lowbit.demo import measure
    >>> from lowbit.data import grace_hopper_standardized
    >>> m = measure(grace_hopper_standardized(), "e4m3fn")
    >>> round(m.rel_rms, 4), m.flushed, m.clipped
    (0.0257, 0.0, 0.0)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from .formats import FORMATS, BlockFormat, Format, InvalidArgument, Rounding, get_format

__all__ = ["Measurement", "measure", "add_arguments", "main"]


@dataclass(frozen=True)
class Measurement:
    """Errors of one format on one tensor (``x`` itself, and ``x`` scaled by ``max / amax``)."""

    name: str
    bits: float  #: bits per element (block formats include their share of the scale)
    unsigned: bool  #: the format is unsigned, so ``|x|`` was quantised
    rel_rms: float  #: ||q - x|| / ||x||
    max_abs: float  #: max |q - x|
    flushed: float  #: fraction of non-zero inputs that became zero
    clipped: float  #: fraction of inputs beyond the largest finite value (block: of their block)
    nonfinite: float  #: fraction of results that are NaN or infinite
    rel_rms_scaled: float | None  #: after per-tensor absmax scaling; None: block or wide


_SCALED_MAX = 2**64  # wider formats are used unscaled: the scaled column shows '-'


def _unsigned(fmt: Format) -> bool:
    element = fmt.element if isinstance(fmt, BlockFormat) else fmt
    return not getattr(element, "signed", True)


def _quantize(x, fmt, rounding, seed):
    from . import quantize  # lazy: the numba kernels load on first use
    return np.asarray(quantize(x, fmt, rounding, seed=seed), dtype=np.float64)


def _rel_rms(q: np.ndarray, x: np.ndarray) -> float:
    return float(np.sqrt(np.mean((q - x) ** 2) / np.mean(x ** 2)))


def measure(x: np.ndarray, fmt: Format | str, rounding: Rounding = Rounding.NEAREST_EVEN,
            seed: int | None = 0) -> Measurement:
    """Quantise ``x`` (float array, never modified) to ``fmt`` and measure the error."""
    fmt = get_format(fmt)
    unsigned = _unsigned(fmt)
    xin = np.abs(x) if unsigned else x
    ref = xin.astype(np.float64)
    q = _quantize(xin, fmt, rounding, seed)
    finite = np.isfinite(q)
    qf = np.where(finite, q, ref)
    scaled = None
    if not isinstance(fmt, BlockFormat) and fmt.max < _SCALED_MAX:
        s = float(fmt.max) / float(np.max(np.abs(ref)))
        scaled = _rel_rms(_quantize(xin * np.float32(s), fmt, rounding, seed) / s, ref)
    bits = fmt.bits_per_element if isinstance(fmt, BlockFormat) else fmt.bits
    return Measurement(
        name=fmt.name, bits=float(bits), unsigned=unsigned, rel_rms=_rel_rms(qf, ref),
        max_abs=float(np.max(np.abs(qf - ref))), flushed=float(np.mean((q == 0) & (ref != 0))),
        clipped=_clipped(xin, ref, q, fmt, rounding, seed), nonfinite=float(np.mean(~finite)),
        rel_rms_scaled=scaled)


def _clipped(xin, ref, q, fmt, rounding, seed) -> float:
    """Fraction of |x| beyond max; for block formats beyond element max times the block scale,
    i.e. elements that saturated at the element's max while |q| < |x|."""
    if not isinstance(fmt, BlockFormat):
        return float(np.mean(np.abs(ref) > float(fmt.max)))
    from . import decode, encode
    element = np.abs(decode(encode(xin, fmt, rounding, seed=seed).codes, fmt.element))
    return float(np.mean((element == float(fmt.element.max)) & (np.abs(q) < np.abs(ref))))


_HEADER = (f"{'format':<17}{'bits':>7}{'rel RMS':>11}{'max |err|':>11}{'to zero':>9}"
           f"{'clipped':>9}{'NaN/inf':>9}{'scaled RMS':>12}")


def _pct(f: float) -> str:
    return f"{100 * f:.2f}%"


def _line(m: Measurement) -> str:
    scaled = f"{m.rel_rms_scaled:.3e}" if m.rel_rms_scaled is not None else "-"
    note = "  (|x|)" if m.unsigned else ""
    return (f"{m.name:<17}{m.bits:>7g}{m.rel_rms:>11.3e}{m.max_abs:>11.3e}{_pct(m.flushed):>9}"
            f"{_pct(m.clipped):>9}{_pct(m.nonfinite):>9}{scaled:>12}{note}")


def run(names, rounding: Rounding, seed: int | None, stream: TextIO) -> int:
    """Print the header and one line per format; returns the exit status."""
    from .data import grace_hopper_standardized
    x = grace_hopper_standardized()
    print(f"Grace Hopper portrait (public domain), {x.shape[0]}x{x.shape[1]} greyscale pixels "
          f"standardised to mean 0, std 1, float32; range [{x.min():.3f}, {x.max():.3f}].",
          file=stream)
    print(f"Rounding {rounding.name}" + (f", seed {seed}" if rounding == Rounding.STOCHASTIC
                                        else "") + ". 'scaled RMS': x * max/amax quantised, "
          "then divided back (per-tensor absmax scaling).\n", file=stream)
    print(_HEADER, file=stream)
    start = time.perf_counter()
    for name in names:
        try:
            print(_line(measure(x, name, rounding, seed)), file=stream)
        except (ImportError, NotImplementedError, InvalidArgument) as e:
            # a format without this rounding mode, or block kernels missing from this build
            print(f"{name:<17}  not available: {e}", file=stream)
    print(f"\n{len(names)} formats in {time.perf_counter() - start:.1f} s "
          "(the first run also compiles the numba kernels).", file=stream)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounding", default="NEAREST_EVEN", type=str.upper,
                        choices=[m.name for m in Rounding], help="rounding mode (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for STOCHASTIC (default 0)")
    parser.add_argument("--formats", nargs="+", metavar="NAME", default=None,
                        help="formats to show (default: the whole catalogue)")


def main(args: argparse.Namespace, stream: TextIO) -> int:
    names = list(args.formats) if args.formats else list(FORMATS.names())
    for name in names:
        get_format(name)  # unknown names fail before any work, with the closest names
    return run(names, Rounding[args.rounding], args.seed, stream)

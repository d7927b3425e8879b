"""``lowbit gemm-error``: relative error of emulated GEMM datapaths against the exact result, as
a function of K; a table on stdout and a PNG (matplotlib, Agg).

It shows swamping with a plain fp16 accumulator (positive data: the running sum grows until each
product falls below half an ulp) and its cure by chunking, and H100 FP8 tensor-core error with and
without promotion to FP32 every 128 products (DeepSeek-V3).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

__all__ = ["main", "add_arguments", "datapaths", "relative_errors"]

#: The docstring's first paragraph, as ``--help`` prints it.
_SUMMARY = " ".join(__doc__.split("\n\n")[0].split()).replace("``", "")


def _h100_fp8():
    """The H100 FP8 fused datapath (from lowbit.accelerators when present)."""
    try:
        from .accelerators.tensor_cores import tensor_core
        return tensor_core("H100", "e4m3fn").accumulation
    except ImportError:
        from .emulator.fused import FusedAccumulation
        from .formats import Rounding
        return FusedAccumulation(terms=32, extra_bits=-10, output="binary32",
                                 rounding=Rounding.TOWARD_ZERO, min_exponent=-133,
                                 a_format="e4m3fn", b_format="e4m3fn")


def datapaths() -> dict:
    """Name -> Datapath of every datapath the command knows (built on demand)."""
    from .emulator.datapath import Chunked, Datapath, Exact, Promoted, Sequential
    s = Sequential
    out = {
        "fp16-acc": Datapath(a="fp16", b="fp16", accumulation=s(format="fp16")),
        "fp16-chunk64": Datapath(a="fp16", b="fp16", accumulation=Chunked(
            chunk=64, inner=s(format="fp16"), outer=s(format="fp16"))),
        "fp16-sr": Datapath(a="fp16", b="fp16", accumulation=s(format="fp16",
                                                               rounding="stochastic")),
        "bf16-acc": Datapath(a="bf16", b="bf16", accumulation=s(format="bf16")),
        "fp32-acc": Datapath(a="fp16", b="fp16", accumulation=s(format="binary32")),
        "e5m2-169-chunk64": Datapath(a="e5m2", b="e5m2", accumulation=Chunked(
            chunk=64, inner=s(format="1-6-9"), outer=s(format="1-6-9"))),
        "exact-fp32": Datapath(a="fp16", b="fp16", accumulation=Exact(format="binary32")),
    }
    try:
        fused = _h100_fp8()
    except Exception:  # the fused model is another module; the table works without it
        return out
    out["h100-fp8"] = Datapath(a="e4m3fn", b="e4m3fn", accumulation=fused)
    out["h100-fp8-promoted"] = Datapath(a="e4m3fn", b="e4m3fn", accumulation=Promoted(
        interval=128, inner=fused, outer=s(format="binary32")))
    return out


DEFAULT = ["fp16-acc", "fp16-chunk64", "fp32-acc", "h100-fp8", "h100-fp8-promoted"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datapath", nargs="+", default=None, metavar="NAME",
                        help=f"datapaths to compare (default: {' '.join(DEFAULT)}; "
                             "'list' prints every name)")
    parser.add_argument("--kmin", type=int, default=4, help="smallest K is 2^kmin (default 4)")
    parser.add_argument("--kmax", type=int, default=16, help="largest K is 2^kmax (default 16)")
    parser.add_argument("--rows", type=int, default=4, help="M = N of each GEMM (default 4)")
    parser.add_argument("--distribution", choices=["uniform", "normal"], default="uniform",
                        help="operand entries: uniform in [0, 1) (swamping) or standard normal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="gemm_error.png", help="output PNG ('' for none)")


def relative_errors(dp, ks, rows: int, distribution: str, seed: int) -> list[float]:
    """Median over the M x N outputs of |emulated - exact| / |exact| for each K in ``ks``; the
    exact result is ``math.fsum`` of the products of the operands as the datapath quantised them."""
    from .emulator.gemm import gemm
    from .emulator.quantize import quantize
    rng = np.random.default_rng(seed)
    errs = []
    for k in ks:
        draw = rng.random if distribution == "uniform" else rng.standard_normal
        a, b = draw((rows, k)), draw((k, rows))
        got = gemm(a, b, dp)
        qa = np.asarray(quantize(a, dp.a), np.float64)
        qb = np.asarray(quantize(b, dp.b), np.float64)
        exact = np.array([[math.fsum(qa[i] * qb[:, j]) for j in range(rows)]
                          for i in range(rows)])
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(got - exact) / np.abs(exact)
        errs.append(float(np.median(rel)))
    return errs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowbit gemm-error", description=_SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)
    table = datapaths()
    names = args.datapath or [n for n in DEFAULT if n in table]
    if names == ["list"]:
        print("\n".join(table))
        return 0
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"lowbit gemm-error: unknown datapath {unknown}; known: {', '.join(table)}",
              file=sys.stderr)
        return 2
    if not 0 <= args.kmin <= args.kmax <= 22 or args.rows < 1:
        print("lowbit gemm-error: need 0 <= kmin <= kmax <= 22 and rows >= 1", file=sys.stderr)
        return 2
    ks = [2**e for e in range(args.kmin, args.kmax + 1)]
    errs = {n: relative_errors(table[n], ks, args.rows, args.distribution, args.seed)
            for n in names}
    _print_table(ks, errs)
    if args.png:
        _plot(ks, errs, args.png, args.distribution)
        print(f"wrote {args.png}")
    return 0


def _print_table(ks, errs) -> None:
    names = list(errs)
    width = max(10, *(len(n) for n in names))
    print("median relative error vs exact")
    print(f"{'K':>7} " + " ".join(f"{n:>{width}}" for n in names))
    for t, k in enumerate(ks):
        print(f"{k:>7} " + " ".join(f"{errs[n][t]:>{width}.3e}" for n in names))


def _plot(ks, errs, path: str, distribution: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, e in errs.items():
        ax.loglog(ks, [max(v, 1e-12) for v in e], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("K (products per output)")
    ax.set_ylabel("median relative error (floor 1e-12)")
    ax.set_title(f"GEMM datapath error vs K ({distribution} operands)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

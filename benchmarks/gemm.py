"""GEMM datapath throughput, as ratios against native torch float32 matmul measured in this run.

Usage: python benchmarks/gemm.py [--quick] [--repeat N]

Each lowbit case times ``gemm(A, B, datapath)`` end to end (operand quantisation included),
best of ``--repeat`` after one warm-up call (which compiles or loads the kernels). torch is timed
alternately with every case, so each ratio pairs timings taken moments apart (shared machines
drift by tens of per cent within a run); the shape's header gives torch's best over the run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _best(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _paired(fn, ref, repeat: int) -> tuple[float, float]:
    """Best times of ``fn`` and ``ref``, timed alternately after one warm-up call of each."""
    fn()
    ref()
    best_fn = best_ref = float("inf")
    for _ in range(repeat):
        for which in (fn, ref):
            t = time.perf_counter()
            which()
            dt = time.perf_counter() - t
            if which is fn:
                best_fn = min(best_fn, dt)
            else:
                best_ref = min(best_ref, dt)
    return best_fn, best_ref


def cases():
    from lowbit.emulator.datapath import (BinaryAccumulation, Chunked, Datapath,
                                          IntegerAccumulation, Product, Promoted, Sequential)
    from lowbit.formats import Rounding
    s = Sequential
    R = Rounding

    def seq(ops: str, acc: str, rounding=R.NEAREST_EVEN):
        """Operands ``ops`` (both) into a sequential ``acc`` accumulator."""
        return Datapath(a=ops, b=ops, accumulation=s(format=acc, rounding=rounding))

    out = [
        ("exact products, fp32 sequential", seq("fp16", "binary32")),
        ("fp16 operands, fp16 acc per MAC", seq("fp16", "fp16")),
        ("bf16 operands, fp32 sequential", seq("bf16", "binary32")),
        ("bf16 operands, bf16 acc per MAC", seq("bf16", "bf16")),
        ("tf32 operands, fp32 sequential", seq("tf32", "binary32")),
        ("fp32 operands, fp32 sequential (FMA)", seq("binary32", "binary32")),
        ("e4m3 operands, fp16 acc per MAC", seq("e4m3fn", "fp16")),
        ("e4m3 operands, e4m3fn acc per MAC", seq("e4m3fn", "e4m3fn")),
        ("fp16 operands, bf16 acc per MAC", seq("fp16", "bf16")),
        ("fp16 operands, fp16 acc toward zero", seq("fp16", "fp16", R.TOWARD_ZERO)),
        ("e4m3 operands, e5m2 acc round-to-odd", seq("e4m3fn", "e5m2", R.TO_ODD)),
        ("e4m3 operands, e5m2 acc per MAC", seq("e4m3fn", "e5m2")),
        ("e4m3 operands, e4m3fn acc toward zero", seq("e4m3fn", "e4m3fn", R.TOWARD_ZERO)),
        ("fp16 MAC, product rounded to fp16", Datapath(
            a="fp16", b="fp16", product=Product(format="fp16"), accumulation=s(format="fp16"))),
        ("fp16 operands, fp16 acc stochastic", seq("fp16", "fp16", R.STOCHASTIC)),
        ("fp16 operands, bf16 acc stochastic", seq("fp16", "bf16", R.STOCHASTIC)),
        ("fp16 operands, fp32 acc stochastic", seq("fp16", "binary32", R.STOCHASTIC)),
        ("fp16 operands, fp32 acc toward zero", seq("fp16", "binary32", R.TOWARD_ZERO)),
        ("fp16 operands, fp32 acc nearest-away", seq("fp16", "binary32", R.NEAREST_AWAY)),
        ("fp16 chunked c=64 (fp16 in, fp32 out)", Datapath(a="fp16", b="fp16", accumulation=Chunked(
            chunk=64, inner=s(format="fp16"), outer=s(format="binary32")))),
        ("int4 x int4 -> int32", Datapath(a="int4", b="int4", accumulation=IntegerAccumulation())),
        ("binary XNOR-popcount", Datapath(a="binary", b="binary",
                                          accumulation=BinaryAccumulation())),
    ]
    try:
        from lowbit.accelerators.tensor_cores import tensor_core
        out.append(("H100 FP8 fused (tensor_core)", tensor_core("H100", "e4m3fn")))
        out.append(("V100 fp16 fused, 4-term blocks", tensor_core("V100", "fp16")))
        h100 = tensor_core("H100", "e4m3fn").accumulation
        out.append(("H100 FP8 + promotion (N_C=128, fp32)", Datapath(
            a="e4m3fn", b="e4m3fn", accumulation=Promoted(
                interval=128, inner=h100, outer=s(format="binary32")))))
    except Exception as e:  # another module; report and go on
        print(f"(H100 FP8 fused model unavailable: {e})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the 256x1024x256 shape")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import numba
    import torch
    # (the third shape, few columns as in a classifier layer, times the tensor-core models only)
    shapes = [(256, 1024, 256, "")] + ([] if args.quick else [(1024, 1024, 1024, ""),
                                                              (2048, 512, 16, "fused")])
    from lowbit.emulator.gemm import gemm
    print(f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}")
    print("mptorch float_mm: not installed here (not measured)")
    for m, k, n, only in shapes:
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        ta, tb = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
        macs = m * k * n
        t_ref = _best(lambda: ta @ tb, args.repeat)
        rows = []
        for name, dp in cases():
            if only not in name:
                continue
            x, y = a, b
            if dp.a.name in ("int4",):
                x, y = rng.integers(-8, 8, (m, k)), rng.integers(-8, 8, (k, n))
            if dp.a.name == "binary":
                x, y = np.sign(a) + (a == 0), np.sign(b) + (b == 0)
            t, t_pair = _paired(lambda: gemm(x, y, dp), lambda: ta @ tb, args.repeat)
            t_ref = min(t_ref, t_pair)
            rows.append(f"{name:40} {macs / t / 1e9:8.2f} {t_pair / t:8.3f} {macs / t_pair / 1e9:9.1f}")
        print(f"\nshape {m}x{k}x{n}: torch float32 matmul {macs / t_ref / 1e9:.1f} GMAC/s (best)")
        print(f"{'case':40} {'GMAC/s':>8} {'vs fp32':>8} {'torch now':>9}")
        print("\n".join(rows))


if __name__ == "__main__":
    main()

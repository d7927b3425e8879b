"""Tensor-core presets against GPU-measured results (Khattak & Mikaitis), bit for bit.

Every output of every set of ``tests/data/tensor_core_validation`` (5000 dot products each) goes
through the public API: ``tensor_core(gpu, format, output)``, then ``lowbit.emulator.gemm.gemm``
and the datapath's accumulation. The data README (and ``training_hw.md`` 4.4) calls the FP8-input
fp16-output results unmodelled: the MATLAB model keeps ``10 + extra_bits`` = 0 fraction bits
there. lowbit keeps ``min(10, 23 + extra_bits)`` and models the measured instruction (mma.sync:
the interleaved HMMA path on H100 and B200), which reproduces all of them; the paths that were not
measured (H100 WGMMA, B200 tcgen05 with fp16 output) are refused with ``UnmodelledPathError``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import pytest

from lowbit.accelerators import (ALIASES, PRESETS, UnmodelledPathError, UnsupportedTensorCoreError,
                                 supported, tensor_core, tensor_core_accumulation,
                                 tensor_core_preset)
from lowbit.accelerators.tensor_cores import FP8_FP16_OUTPUT
from lowbit.emulator.gemm import gemm

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "tensor_core_validation"
FORMATS = {"fp16": "fp16", "bf16": "bf16", "tf32": "tf32", "E4M3": "e4m3fn", "E5M2": "e5m2"}
FP8 = ("e4m3fn", "e5m2")
SETS = sorted(p.stem for p in DATA.glob("*.npz"))
GROUP = 25  # dot products per call: a GROUP x GROUP block whose diagonal is wanted


def load(name: str, out: str = "fp32"):
    gpu, tag = name.split("_")
    fmt = FORMATS[tag]
    data = np.load(DATA / f"{name}.npz")
    a = data["a"].view(np.float32).astype(np.float64)
    b = data["b"].view(np.float32).astype(np.float64)
    c = data["c"].view(np.float32).astype(np.float64)
    if gpu == "H100" and fmt in FP8 and out == "fp32":
        c = np.zeros_like(c)  # measured with WGMMA and a zeroed accumulator (data README)
    if gpu in ("H100", "B200") and fmt in FP8 and (gpu == "B200" or out == "fp16"):
        gpu += "-mma.sync"  # measured through mma.sync (data README, CUDA generators)
    return gpu, fmt, a, b, c, data


def rowwise(dp, a, b, c) -> np.ndarray:
    """Dot product n of a[n] and b[n] from c[n], for every n: the first group through
    ``gemm(..., dp)``, the rest through ``dp.accumulation.run`` (the same record, less overhead)."""
    out = np.empty(a.shape[0])
    for s in range(0, a.shape[0], GROUP):
        aa, bb = a[s:s + GROUP], b[s:s + GROUP]
        cc = np.zeros((len(aa), len(aa)))
        np.fill_diagonal(cc, c[s:s + GROUP])
        d = gemm(aa, bb.T, dp, cc) if s == 0 else dp.accumulation.run(aa, bb.T, cc, None)
        out[s:s + GROUP] = np.diagonal(d)
    return out


CASES = [(name, out) for name in SETS for out in ("fp32", "fp16")
         if f"d_{out}" in np.load(DATA / f"{name}.npz").files]


def test_every_gpu_format_and_output_is_covered():
    gpus = {n.split("_")[0] for n in SETS}
    assert gpus == {"V100", "A100", "H100", "B200", "Ada"}
    assert len(CASES) == 19 + 11  # every d_fp32; d_fp16 of the fp16 and FP8 input sets


@pytest.mark.parametrize("name,out", CASES)
def test_gpu_results_reproduced_bit_for_bit(name, out):
    gpu, fmt, a, b, c, data = load(name, out)
    dp = tensor_core(gpu, fmt, "binary32" if out == "fp32" else "fp16")
    got = rowwise(dp, a, b, c)
    assert np.array_equal(got, got.astype(np.float32).astype(np.float64))
    want = data[f"d_{out}"]
    bad = np.flatnonzero(got.astype(np.float32).view(np.uint32) != want)
    assert bad.size == 0, (f"{name} {out}: {bad.size} of {len(want)} differ, first {bad[:5]}: "
                           f"got {got[bad[:3]]}, GPU {want[bad[:3]].view(np.float32)}")


@pytest.mark.parametrize("gpu", ["H100", "H200", "B200"])
@pytest.mark.parametrize("fmt", FP8)
def test_unmeasured_fp8_fp16_output_paths_are_refused(gpu, fmt):
    # H100 WGMMA and B200 tcgen05 with fp16 output: no GPU data, no published model.
    with pytest.raises(UnmodelledPathError, match="unmodelled") as info:
        tensor_core(gpu, fmt, "fp16")
    assert "mma.sync" in str(info.value)
    doc = (ROOT / "docs" / "tensor_cores.md").read_text(encoding="utf-8").lower()
    assert "unmodelled: fp8 inputs with fp16 output through wgmma or tcgen05" in doc


def test_aliases_share_the_model():
    for alias, chip in ALIASES.items():
        fmts = [f for g, f in PRESETS if g == chip]
        assert fmts and all(tensor_core_preset(alias, f) == PRESETS[(chip, f)] for f in fmts)
    assert tensor_core_accumulation("H200", "e5m2") == tensor_core_accumulation("H100", "e5m2")
    assert tensor_core("L40S", "float16").accumulation.terms == 8


def test_presets_cite_their_source_and_variants_differ_only_where_stated():
    for (gpu, fmt), p in PRESETS.items():
        assert p.source and p.validated and p.gpu == gpu and p.input_format == fmt
    h, b = tensor_core_preset("H100", "fp16"), tensor_core_preset("B200", "fp16")
    assert replace(h, gpu="B200", source=b.source) == b
    mma = tensor_core_accumulation("B200-mma.sync", "e4m3fn")
    assert mma.pattern.name == "INTERLEAVED" and mma.extra_bits == 2 and mma.terms == 32
    assert tensor_core_accumulation("H100", "e4m3fn").precision == 13


@pytest.mark.parametrize("gpu,fmt,out", [("V100", "bf16", "binary32"), ("TPU", "fp16", "binary32"),
                                         ("A100", "tf32", "fp16"), ("H100", "fp16", "bf16")])
def test_unsupported_combinations_list_the_supported_ones(gpu, fmt, out):
    with pytest.raises(UnsupportedTensorCoreError, match="H100/fp16->binary32") as info:
        tensor_core(gpu, fmt, out)
    assert isinstance(info.value, ValueError)
    assert FP8_FP16_OUTPUT not in str(info.value)


def test_result_does_not_depend_on_thread_count():
    gpu, fmt, a, b, c, _ = load("H100_fp16")
    acc = tensor_core_accumulation(gpu, fmt)
    A, B = a[:40].reshape(20, -1), b[:40].reshape(-1, 20)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = acc.run(A, B)
        numba.set_num_threads(before)
        assert np.array_equal(one, acc.run(A, B))
    finally:
        numba.set_num_threads(before)


def _doc_table() -> list[list[str]]:
    text = (ROOT / "docs" / "tensor_cores.md").read_text(encoding="utf-8")
    block = text.split("<!-- preset-table -->")[1]
    rows = [ln for ln in block.strip().splitlines() if ln.startswith("|")][2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_docs_parameter_table_matches_the_preset_data():
    rows = _doc_table()
    assert len(rows) == len(PRESETS)
    for (gpu, fmt), row in zip(PRESETS, rows):
        p = PRESETS[(gpu, fmt)]
        fp16 = f"{p.min_exponent_fp16}" if (gpu, fmt, "fp16") in supported() else "-"
        want = [gpu, fmt, str(p.terms), str(p.extra_bits), p.rounding.name,
                p.rounding_fp16.name if fp16 != "-" else "-", str(p.min_exponent), fp16,
                p.pattern.name]
        assert row[:9] == want, (row, want)
        assert re.sub(r"\s+", " ", row[9]) == p.validated

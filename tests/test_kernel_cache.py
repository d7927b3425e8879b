"""The register-blocked GEMM kernels (``kernels_gemm_micro``) cache on disk: a new process loads
what an earlier one compiled, with the same results, and an edit anywhere in the emulator's
sources (``SOURCE_DIGEST``) compiles afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lowbit.emulator.kernels_gemm_micro import _pack, _unpack

SCRIPT = """
import json, sys
import numpy as np
from lowbit.emulator import Datapath, Sequential, gemm, quantize
from lowbit.emulator import kernels_gemm_micro as micro

if sys.argv[1] == "edited":
    micro.SOURCE_DIGEST = "an edited source tree"
made = []
real = micro._make_kernel
micro._make_kernel = lambda *args: made.append(real(*args)) or made[-1]
rng = np.random.default_rng(0)
a = quantize(rng.standard_normal((9, 40)), "fp16")
b = quantize(rng.standard_normal((40, 20)), "fp16")
out = gemm(a, b, Datapath(a="fp16", b="fp16", accumulation=Sequential(format="e5m2")))
(kernel,) = made
print(json.dumps({"hits": sum(kernel.stats.cache_hits.values()),
                  "misses": sum(kernel.stats.cache_misses.values()),
                  "out": out.tolist()}))
"""


def _run(tmp_path, variant: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    done = subprocess.run([sys.executable, "-c", SCRIPT, variant], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_new_process_loads_the_compiled_kernel(tmp_path):
    first = _run(tmp_path, "plain")
    second = _run(tmp_path, "plain")
    edited = _run(tmp_path, "edited")
    assert (first["hits"], first["misses"]) == (0, 1)
    assert (second["hits"], second["misses"]) == (1, 0)
    assert (edited["hits"], edited["misses"]) == (0, 1)
    assert first["out"] == second["out"] == edited["out"]


def test_kernel_keys_round_trip_and_reject_wide_values():
    for values in [(0, 0, 0), (1, 1, 0, 0, 0), (7, 23, 32, 5, 255), (10, 0, 3, 0, 0)]:
        assert _unpack(_pack(values)) == values
    assert _pack((1, 0, 0)) != _pack((0, 1, 0, 0))  # leading zeros count
    with pytest.raises(ValueError, match="outside 0..255"):
        _pack((1, 256, 0))

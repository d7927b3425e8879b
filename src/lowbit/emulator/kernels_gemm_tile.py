"""Specialised, column-vectorised float32 GEMM kernels: one compiled kernel per rounding step.

``kernels_gemm_fast`` holds the per-MAC arithmetic (float32 sum, TwoSum round-to-odd fix, the
rounding intrinsics); this module builds, for one combination of inner and outer step, a kernel
whose innermost loop runs over a strip of output columns with the step's constants baked in, so
that LLVM emits one branch-free 8-lane loop. A step is ``(kind, twosum, mode)``:

* kind 0: binary32 accumulator, the host's float32 addition (RNE);
* kind 1: fp16 accumulator, ``fptrunc``/``fpext`` (RNE);
* kind 2: any fast-path format, RNE by ``round_bits_f32``;
* kind 3: any fast-path format and deterministic mode ``mode`` by ``llvm_round.ROUNDERS``.

``twosum=1`` rounds the float32 sum to odd first (needed unless the float32 sum provably cannot
mislead the following rounding). Order: element ``(i, j)`` accumulates k ascending, starting
from ``c`` (or zero); chunking restarts a zero partial every ``chunk`` products and folds it in
with the outer step. Rows (``RB`` at a time) and column strips (``TJ`` wide) are tiles only:
every element sees the same arithmetic whatever the tiling or thread count.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import prange

from .kernels_gemm_fast import make_step

__all__ = ["tile_kernel", "RB", "TJ"]

RB = 4      # rows per work item (each b strip load feeds RB accumulator rows)
TJ = 128    # columns per work item (RB * TJ float32 accumulators stay in L1)


#: As ``_jit.jit_parallel`` but not cached on disk: numba keys a closure's cache entry by its
#: pickled cells, and the step intrinsics pickle differently in every process, so each run
#: would only add files. A kernel compiles once per process and step pair (about 2-4 s).
_jit_closure = numba.njit(cache=False, error_model="numpy", nogil=True, parallel=True)


def _make_kernel(step_in, step_out):
    """The kernel for two step intrinsics (inlined: the loops are branch-free)."""
    @_jit_closure
    def kernel(a, b, c, out, has_c, g_in, g_out, chunk):
        """a float32 [M, K], b float32 [K, N], c float64 [M, N] (if has_c); out float64."""
        m, kk = a.shape
        n = b.shape[1]
        nt = (n + TJ - 1) // TJ
        step = kk if chunk <= 0 else chunk
        for wi in prange(((m + RB - 1) // RB) * nt):
            i0 = (wi // nt) * RB
            j0 = (wi % nt) * TJ
            rr = min(RB, m - i0)
            w = min(TJ, n - j0)
            acc = np.zeros((RB, TJ), np.float32)
            if has_c == 1:
                for r in range(rr):
                    for t in range(w):
                        acc[r, t] = np.float32(c[i0 + r, j0 + t])
            part = np.zeros((RB, TJ), np.float32) if chunk > 0 else acc
            for k0 in range(0, kk, step):
                for k in range(k0, min(kk, k0 + step)):
                    bk = b[k, j0:j0 + w]
                    for r in range(rr):
                        ar = a[i0 + r, k]
                        pa = part[r]
                        for t in range(w):
                            pa[t] = step_in(pa[t], ar * bk[t], g_in)
                if chunk > 0:
                    for r in range(rr):
                        ac = acc[r]
                        pa = part[r]
                        for t in range(w):
                            ac[t] = step_out(ac[t], pa[t], g_out)
                            pa[t] = np.float32(0.0)
            for r in range(rr):
                for t in range(w):
                    out[i0 + r, j0 + t] = np.float64(acc[r, t])

    return kernel


@lru_cache(maxsize=None)
def tile_kernel(step_in: tuple[int, int, int], step_out: tuple[int, int, int]):
    """The compiled-on-first-call kernel for inner and outer steps ``(kind, twosum, mode)``."""
    return _make_kernel(make_step(*step_in), make_step(*step_out))

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

import numpy as np
from numba import prange

from ._jit import bits_f32, jit_inline, jit_parallel
from .kernels_gemm_fast import add_odd_f32, round_bits_f32, round_f16
from .llvm_round import ROUNDERS

__all__ = ["tile_kernel", "RB", "TJ"]

RB = 4      # rows per work item (each b strip load feeds RB accumulator rows)
TJ = 128    # columns per work item (RB * TJ float32 accumulators stay in L1)


def _make_step(kind: int, twosum: int, mode: int):
    """A jitted ``step(acc, p, g) -> float32`` for one constant (kind, twosum, mode); ``g`` holds
    the format's int64 parameters (kind 2: ``round_bits_f32``'s five; kind 3: ROUNDERS' nine)."""
    rnd = ROUNDERS[mode] if kind == 3 else None

    if kind == 0:
        @jit_inline
        def step(acc, p, g):
            return acc + p
    elif kind == 1 and twosum == 1:
        @jit_inline
        def step(acc, p, g):
            return round_f16(add_odd_f32(acc, p))
    elif kind == 1:
        @jit_inline
        def step(acc, p, g):
            return round_f16(acc + p)
    elif kind == 2 and twosum == 1:
        @jit_inline
        def step(acc, p, g):
            return round_bits_f32(add_odd_f32(acc, p), np.int32(g[0]), np.int32(g[1]),
                                  np.int32(g[2]), np.int32(g[3]), bits_f32(np.uint32(g[4])))
    elif kind == 2:
        @jit_inline
        def step(acc, p, g):
            return round_bits_f32(acc + p, np.int32(g[0]), np.int32(g[1]), np.int32(g[2]),
                                  np.int32(g[3]), bits_f32(np.uint32(g[4])))
    elif kind == 3 and twosum == 1:
        @jit_inline
        def step(acc, p, g):
            return rnd(add_odd_f32(acc, p), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8])
    elif kind == 3:
        @jit_inline
        def step(acc, p, g):
            return rnd(acc + p, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8])
    else:
        raise ValueError(f"kind={kind}: must be 0, 1, 2 or 3")
    return step


def _make_kernel(step_in, step_out):
    @jit_inline
    def span(a, b, i0, rr, j0, w, k0, k1, acc, g):
        """``acc[r, t] = step(acc[r, t], a[i0+r, k] * b[k, j0+t])`` for k in [k0, k1)."""
        for k in range(k0, k1):
            bk = b[k, j0:j0 + w]
            for r in range(rr):
                ar = a[i0 + r, k]
                ac = acc[r]
                for t in range(w):
                    ac[t] = step_in(ac[t], ar * bk[t], g)

    @jit_parallel
    def kernel(a, b, c, out, has_c, g_in, g_out, chunk):
        """a float32 [M, K], b float32 [K, N], c float64 [M, N] (if has_c); out float64."""
        m, kk = a.shape
        n = b.shape[1]
        nt = (n + TJ - 1) // TJ
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
            if chunk <= 0:
                span(a, b, i0, rr, j0, w, 0, kk, acc, g_in)
            else:
                part = np.zeros((RB, TJ), np.float32)
                for k0 in range(0, kk, chunk):
                    span(a, b, i0, rr, j0, w, k0, min(kk, k0 + chunk), part, g_in)
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
    return _make_kernel(_make_step(*step_in), _make_step(*step_out))

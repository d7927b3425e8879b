"""One place that fixes the jit options of every kernel, and the scalar bit casts they share."""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["jit", "jit_parallel", "jit_inline", "jit_force_inline", "f64_bits", "bits_f64", "f32_bits", "bits_f32",
           "CHUNK"]

#: Elements per parallel work item. Results never depend on it (random bits are keyed by index).
CHUNK = 1 << 14

jit = numba.njit(cache=True, error_model="numpy", nogil=True)
jit_parallel = numba.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
jit_inline = numba.njit(cache=True, error_model="numpy", nogil=True)
#: Inlined in numba IR: lets a constant argument (a rounding mode) specialise the body so the
#: loop vectorises. Costly to compile; use it for a scalar body called from few sites only.
jit_force_inline = numba.njit(cache=True, error_model="numpy", nogil=True, inline="always")


def _bitcast(src, dst):
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None
        sig = dst(src)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))

        return sig, codegen

    return cast


f64_bits = _bitcast(types.float64, types.uint64)
bits_f64 = _bitcast(types.uint64, types.float64)
f32_bits = _bitcast(types.float32, types.uint32)
bits_f32 = _bitcast(types.uint32, types.float32)

U64 = np.uint64

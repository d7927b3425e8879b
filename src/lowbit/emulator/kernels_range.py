"""The magnitude range of an operand array, for the fast GEMM kernels' exactness checks.

A format as wide as float32 (bf16, tf32) has products that float32 cannot hold in general,
but a GEMM's actual operands usually span a few dozen binades; ``kernels_gemm_api`` checks
their products from the range this kernel finds.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

__all__ = ["magnitude_range"]


@jit
def magnitude_range(x):
    """(smallest nonzero, largest) finite ``|x|`` of a C-contiguous array (``inf`` and 0 when
    it has no nonzero finite value); NaN and infinities are left out. One branch-free pass."""
    flat = x.reshape(-1)
    lo, hi = np.inf, 0.0
    for i in range(flat.size):
        a = abs(np.float64(flat[i]))
        lo = min(lo, a if a > 0.0 else np.inf)
        hi = max(hi, a if a < np.inf else 0.0)
    return lo, hi

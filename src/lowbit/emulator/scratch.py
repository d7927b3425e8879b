"""Reused scratch arrays for a call's internal temporaries.

glibc serves large allocations with fresh ``mmap`` pages and returns them on ``free``, so a
temporary allocated on every call pays a page fault per 4 KiB page each time: quantising two
2 MB operands in turn measured 4 ms a pair against 0.47 ms with the pages kept. Temporaries that
never leave a call (float32 staging copies, quantised GEMM operands, padded kernel inputs) take
one of these buffers instead; results handed to the caller are always fresh arrays.

Buffers are per thread and per ``tag`` (one tag per use site), grow to the largest request seen
and hold undefined contents. Requests over ``LIMIT`` bytes get a fresh array instead: there the
page faults are small beside the work done on the data, and the memory is not held.

Every array starts on a 64-byte boundary (``ALIGN``, a cache line). numpy's large arrays start
16 bytes past one (glibc's chunk header), so every 32-byte vector load of a float32 GEMM strip
straddled two lines: aligning the padded kernel operands took the fp32 kernel from 25.8 to
35.5 GMAC/s and the e4m3fn one from 4.2 to 6.3 (1024^3 and 256x1024x256, timed alternately).

Example:
    >>> import numpy as np
    >>> from lowbit.emulator.scratch import scratch
    >>> a = scratch("doc.example", (2, 3), np.float32)
    >>> a.shape, a.dtype, scratch("doc.example", (3, 2), np.float32).base is a.base
    ((2, 3), dtype('float32'), True)
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["scratch", "release", "aligned_empty", "LIMIT", "ALIGN"]

LIMIT = 32 << 20  # bytes: larger requests are not pooled
ALIGN = 64  # bytes: where every array handed out starts

_local = threading.local()


def scratch(tag: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` (contents undefined) on this thread's
    buffer for ``tag``; valid until the next request for the same tag on this thread."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    if size > LIMIT:
        return aligned_empty(shape, dtype)
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    buf = pool.get(tag)
    if buf is None or buf.size < size:
        buf = pool[tag] = aligned_empty((max(size, ALIGN),), np.uint8)
    return buf[:size].view(dtype).reshape(shape)


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on an ``ALIGN``-byte boundary."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + size].view(dtype).reshape(shape)


def release() -> None:
    """Drop this thread's buffers (their memory returns to the allocator)."""
    _local.pool = {}

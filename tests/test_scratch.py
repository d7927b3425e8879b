"""Scratch buffers: reuse per thread and tag, fresh arrays past the limit, no leaks into results."""

from __future__ import annotations

import threading

import numpy as np

from lowbit.emulator import scratch as S
from lowbit.emulator.datapath import Datapath, Sequential
from lowbit.emulator.gemm import gemm


def test_reuse_per_tag_and_thread():
    a = S.scratch("t.a", (4, 5), np.float64)
    b = S.scratch("t.a", (5, 4), np.float64)
    c = S.scratch("t.b", (4, 5), np.float64)
    assert a.shape == (4, 5) and b.shape == (5, 4) and a.flags.c_contiguous
    assert np.shares_memory(a, b) and not np.shares_memory(a, c)
    other = []
    t = threading.Thread(target=lambda: other.append(S.scratch("t.a", (4, 5), np.float64)))
    t.start()
    t.join()
    assert not np.shares_memory(a, other[0])
    big = S.scratch("t.a", (S.LIMIT // 8 + 1,), np.float64)
    assert not np.shares_memory(big, S.scratch("t.a", (4,), np.float64))
    S.release()
    assert not np.shares_memory(a, S.scratch("t.a", (4, 5), np.float64))


def test_results_never_alias_scratch():
    """Two gemm results stay distinct and unchanged by later calls."""
    rng = np.random.default_rng(0)
    dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="fp16"))
    a, b = rng.standard_normal((9, 40)), rng.standard_normal((40, 30))
    first = gemm(a, b, dp)
    keep = first.copy()
    a0, b0 = a.copy(), b.copy()
    second = gemm(-a, b, dp)
    assert np.array_equal(first, keep) and np.array_equal(second, -first)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_every_buffer_starts_on_a_cache_line():
    """Pooled, grown, oversize and odd-shaped buffers all start on an ``ALIGN``-byte boundary."""
    for shape, dtype in [((3,), np.float32), ((7, 5), np.float64), ((1000, 33), np.float32),
                         ((S.LIMIT // 4 + 3,), np.float32)]:
        for tag in ("t.align", "t.align"):  # a fresh buffer, then the pooled one again
            x = S.scratch(tag, shape, dtype)
            assert x.ctypes.data % S.ALIGN == 0 and x.shape == shape and x.dtype == dtype
    y = S.aligned_empty((5, 9), np.int16)
    assert y.ctypes.data % S.ALIGN == 0 and y.shape == (5, 9) and y.flags.c_contiguous

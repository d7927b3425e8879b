"""conv2d through a datapath: against torch's float64 conv on integer data (exact in any order),
and against gemm on the declared (channel, row, column) order with a narrow accumulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowbit import InvalidArgument
from lowbit.emulator.conv import conv2d
from lowbit.emulator.datapath import Datapath, Exact, Sequential
from lowbit.emulator.gemm import gemm

EXACT = Datapath(a="bf16", b="bf16", accumulation=Exact(format="binary32"))


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), ((1, 2), (2, 0), (2, 1), 2), (1, 1, 1, 4)])
def test_conv2d_matches_torch_on_integers(stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x = rng.integers(-4, 5, (2, 4, 7, 6)).astype(float)
    w = rng.integers(-3, 4, (8, 4 // groups, 3, 2)).astype(float)
    bias = rng.integers(-9, 9, 8).astype(float)
    got = conv2d(x, w, EXACT, bias=bias, stride=stride, padding=padding, dilation=dilation,
                 groups=groups)
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(bias),
                                      stride, padding, dilation, groups).numpy()
    assert np.array_equal(got, want)


def test_conv2d_accumulates_in_the_declared_order():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 5, 5))
    w = rng.standard_normal((2, 3, 3, 3))
    dp = Datapath(a="fp16", b="fp16", accumulation=Sequential(format="e4m3fn"))
    got = conv2d(x, w, dp, padding=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for oi, oj in [(0, 0), (2, 3), (4, 4)]:
        patch = xp[0, :, oi:oi + 3, oj:oj + 3].reshape(-1, 1)  # (channel, row, column) order
        want = gemm(w.reshape(2, -1), patch, dp)[:, 0]
        assert np.array_equal(got[0, :, oi, oj], want)


def test_conv2d_bad_arguments():
    x, w = np.ones((1, 4, 5, 5)), np.ones((2, 4, 3, 3))
    for kw in [dict(groups=3), dict(stride=0), dict(padding=-1), dict(bias=np.ones(3)),
               dict(dilation=(1,))]:
        with pytest.raises(InvalidArgument):
            conv2d(x, w, EXACT, **kw)
    with pytest.raises(InvalidArgument):
        conv2d(np.ones((1, 4, 2, 2)), w, EXACT)
    with pytest.raises(InvalidArgument):
        conv2d(np.ones((4, 5, 5)), w, EXACT)

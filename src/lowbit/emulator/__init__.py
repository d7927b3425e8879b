"""Numba kernels and their thin numpy API: quantize, encode/decode, datapaths, GEMM."""

from .quantize import code_dtype, decode, encode, quantize
from .rng import random_bits

__all__ = ["quantize", "encode", "decode", "code_dtype", "random_bits", "BlockCodes"]


def __getattr__(name):
    if name == "BlockCodes":
        from .block import BlockCodes
        return BlockCodes
    raise AttributeError(name)

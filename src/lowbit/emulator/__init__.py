"""Numba kernels and their thin numpy API: quantize, encode/decode, datapaths, GEMM."""

from .quantize import code_dtype, decode, encode, quantize
from .rng import random_bits

__all__ = ["quantize", "encode", "decode", "code_dtype", "random_bits", "BlockCodes"]


def __getattr__(name):
    if name == "BlockCodes":
        from .block import BlockCodes
        return BlockCodes
    raise AttributeError(name)


# GEMM datapaths. Imported eagerly (nothing compiles at import): the module ``gemm`` and the
# function ``gemm`` share a name, and a lazy attribute would be replaced by the module object the
# first time anything imports ``lowbit.emulator.gemm``.
from .counters import Counters  # noqa: E402
from .datapath import (BinaryAccumulation, Chunked, Datapath, DatapathError, Exact,  # noqa: E402
                       IntegerAccumulation, OperandMode, Product, Promoted, Scaling, Sequential)
from .gemm import dot, gemm, matmul  # noqa: E402
from .conv import conv2d  # noqa: E402

__all__ += ["Datapath", "OperandMode", "Product", "Sequential", "Chunked", "Promoted", "Exact",
            "IntegerAccumulation", "BinaryAccumulation", "Scaling", "DatapathError", "Counters",
            "gemm", "dot", "matmul", "conv2d"]

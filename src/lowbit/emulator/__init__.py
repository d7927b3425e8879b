"""Numba kernels and their thin numpy API: quantize, encode/decode, datapaths, GEMM."""

from .quantize import code_dtype, decode, encode, quantize
from .rng import random_bits

__all__ = ["quantize", "encode", "decode", "code_dtype", "random_bits", "BlockCodes"]


def __getattr__(name):
    if name == "BlockCodes":
        from .block import BlockCodes
        return BlockCodes
    raise AttributeError(name)


# --- GEMM datapaths (appended; lazy, so importing lowbit.emulator compiles nothing) ---------
_GEMM_NAMES = {
    **dict.fromkeys(["Datapath", "OperandMode", "Product", "Sequential", "Chunked", "Promoted",
                     "Exact", "IntegerAccumulation", "BinaryAccumulation", "Scaling",
                     "DatapathError"], ".datapath"),
    "Counters": ".counters", "gemm": ".gemm", "dot": ".gemm", "matmul": ".gemm",
    "conv2d": ".conv",
}
__all__ += list(_GEMM_NAMES)
_getattr_before_gemm = __getattr__


def __getattr__(name):  # noqa: F811
    if name in _GEMM_NAMES:
        import importlib
        return getattr(importlib.import_module(_GEMM_NAMES[name], __name__), name)
    return _getattr_before_gemm(name)

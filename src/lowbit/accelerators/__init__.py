"""Published accelerator datapaths as data, each with its citation.

Example:
    >>> from lowbit.accelerators import tensor_core
    >>> tensor_core("V100", "fp16").accumulation.terms
    4
"""

from .tensor_cores import (ALIASES, PRESETS, TensorCorePreset, UnmodelledPathError,
                           UnsupportedTensorCoreError, supported, tensor_core,
                           tensor_core_accumulation, tensor_core_preset)

__all__ = ["ALIASES", "PRESETS", "TensorCorePreset", "UnmodelledPathError",
           "UnsupportedTensorCoreError", "supported", "tensor_core", "tensor_core_accumulation",
           "tensor_core_preset"]

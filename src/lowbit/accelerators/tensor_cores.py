"""NVIDIA tensor-core presets: the published block-FMA parameters per GPU and input format.

Each :class:`TensorCorePreset` is data with its citation; :func:`tensor_core_accumulation` turns
one into a :class:`~lowbit.emulator.fused.FusedAccumulation` and :func:`tensor_core` into a
:class:`~lowbit.emulator.datapath.Datapath`. Parameters: Khattak & Mikaitis, "Accurate Models of
NVIDIA Tensor Cores" (arXiv:2512.07004), ``MATLAB-tensor-core/models/*TC.m`` @b12b5a7; the FP8
``mma.sync`` variant (gpu ``"B200-mma.sync"``, ``"H100-mma.sync"``) from commit 109e412
(``inter_pattern = 1``). FP8 inputs with fp16 output are lowbit's reading (``_FP16_OUT``), matched
to the GPU data. ``validated`` says which GPU data (vendored in
``tests/data/tensor_core_validation``) the tests reproduce bit for bit.

Example:
    >>> from lowbit.accelerators import tensor_core_accumulation
    >>> acc = tensor_core_accumulation("H100", "e4m3fn")
    >>> acc.terms, acc.extra_bits, acc.precision, acc.rounding.name
    (32, -10, 13, 'TOWARD_ZERO')
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..emulator.fused import FusedAccumulation, Pattern
from ..formats import Rounding, get_format

__all__ = ["TensorCorePreset", "PRESETS", "ALIASES", "UnsupportedTensorCoreError",
           "UnmodelledPathError", "tensor_core_preset", "tensor_core_accumulation",
           "tensor_core", "supported"]

RZ, RNE = Rounding.TOWARD_ZERO, Rounding.NEAREST_EVEN
_SRC = "Khattak & Mikaitis, arXiv:2512.07004; MATLAB-tensor-core models/{} @b12b5a7"
_FP8 = ("e4m3fn", "e5m2")
_FP16_OUT = ("lowbit's reading, the fp32-output model with one RNE rounding to fp16 precision "
             "(min(10, 23 + extra_bits) fraction bits), matched to the GPU data")
FP8_FP16_OUTPUT = ("FP8 inputs with fp16 output were measured only through mma.sync (gpu "
                   "'H100-mma.sync', 'B200-mma.sync', 'Ada'); this instruction path (WGMMA / "
                   "tcgen05) is unmeasured and unmodelled")


class UnsupportedTensorCoreError(ValueError):
    """A (gpu, input format, output format) with no published model; the message lists those."""


class UnmodelledPathError(UnsupportedTensorCoreError):
    """A path the hardware has but the published model does not reproduce (FP8 -> fp16)."""


@dataclass(frozen=True, kw_only=True)
class TensorCorePreset:
    """The block-FMA parameters of one GPU and input format (``training_hw.md`` 4.1)."""

    gpu: str
    input_format: str  #: catalogue name of A and B
    terms: int  #: products per block FMA (``fma``)
    extra_bits: int  #: extra alignment bits (``neab``)
    min_exponent: int  #: ``min_exp_limit`` with binary32 output
    min_exponent_fp16: int | None = None  #: with fp16 output; None: no fp16 output modelled
    rounding: Rounding = RZ  #: of each block result with binary32 output
    rounding_fp16: Rounding = RNE  #: with fp16 output
    pattern: Pattern = Pattern.CONTIGUOUS
    validated: str = ""  #: which GPU-measured data reproduce bit for bit
    source: str = ""

    def accumulation(self, output_format: str = "binary32") -> FusedAccumulation:
        """The :class:`FusedAccumulation` of this preset for ``output_format``."""
        out = get_format(output_format)
        fp16 = out.name == "fp16"
        fmt = get_format(self.input_format)
        return FusedAccumulation(
            terms=self.terms, extra_bits=self.extra_bits, output=out,
            rounding=self.rounding_fp16 if fp16 else self.rounding,
            min_exponent=self.min_exponent_fp16 if fp16 else self.min_exponent,
            pattern=self.pattern, a_format=fmt, b_format=fmt)


def _family(base: TensorCorePreset, formats: tuple[str, ...]) -> list[TensorCorePreset]:
    return [replace(base, input_format=f) for f in formats]


def _half(base: TensorCorePreset) -> list[TensorCorePreset]:
    """The fp16 preset and its bf16 variant (bf16 tensor cores accumulate in binary32 only)."""
    return [base, replace(base, input_format="bf16", min_exponent_fp16=None,
                          validated="binary32 output")]


_V100 = TensorCorePreset(gpu="V100", input_format="fp16", terms=4, extra_bits=0,
                         min_exponent=-1024, min_exponent_fp16=-19,
                         validated="binary32 and fp16 output (K = 4)",
                         source=_SRC.format("V100TC.m") + "; Fasi et al., PeerJ CS 7:e330 (2021)")
_A100 = TensorCorePreset(gpu="A100", input_format="fp16", terms=8, extra_bits=1,
                         min_exponent=-132, min_exponent_fp16=-20,
                         validated="binary32 and fp16 output",
                         source=_SRC.format("A100TC.m"))
_A100_TF32 = replace(_A100, input_format="tf32", terms=4, min_exponent_fp16=None,
                     validated="binary32 output (K = 4)")
_H100 = replace(_A100, gpu="H100", terms=16, extra_bits=2, min_exponent=-133,
                min_exponent_fp16=-21, source=_SRC.format("H100TC.m"))
_H100_TF32 = replace(_H100, input_format="tf32", terms=8, min_exponent_fp16=None,
                     validated="binary32 output (K = 4 data only)")
_H100_FP8 = replace(_H100_TF32, input_format="e4m3fn", terms=32, extra_bits=-10,
                    validated="binary32 output (WGMMA data, C = 0)",
                    source=_SRC.format("H100TC.m") + "; DeepSeek-V3 report 3.5.2 (14-bit "
                    "accumulation)")
_B200 = replace(_H100, gpu="B200", source=_SRC.format("B200TC.m"))
_B200_TF32 = replace(_H100_TF32, gpu="B200", source=_B200.source)
_B200_FP8 = replace(_B200_TF32, input_format="e4m3fn", terms=32,
                    validated="none: no GPU data for the native tcgen05 FP8 path",
                    source=_SRC.format("B200TC.m") + " (tcgen05, inherent FP8 cores)")
_B200_MMA = replace(_B200_FP8, gpu="B200-mma.sync", pattern=Pattern.INTERLEAVED,
                    min_exponent_fp16=-21, validated="binary32 and fp16 output (mma.sync data)",
                    source="Khattak & Mikaitis, MATLAB-tensor-core models/tools/GEMM.m @109e412, "
                    "inter_pattern = 1 (FP8 through the fp16 HMMA path); fp16 output: " + _FP16_OUT)
_H100_MMA = replace(_B200_MMA, gpu="H100-mma.sync",
                    validated="fp16 output (mma.sync data); binary32 output unvalidated")
_ADA = replace(_A100, gpu="Ada", source=_SRC.format("AdaTC.m") + "; L40STC.m")
_ADA_TF32 = replace(_A100_TF32, gpu="Ada", source=_ADA.source)
_ADA_FP8 = replace(_ADA_TF32, input_format="e4m3fn", terms=16, extra_bits=-10,
                   min_exponent_fp16=-20, validated="binary32 and fp16 output",
                   source=_ADA.source + "; fp16 output: " + _FP16_OUT)

PRESETS: dict[tuple[str, str], TensorCorePreset] = {
    (p.gpu, p.input_format): p for p in [
        _V100,
        *_half(_A100), _A100_TF32,
        *_half(_H100), _H100_TF32, *_family(_H100_FP8, _FP8),
        *_half(_B200), _B200_TF32, *_family(_B200_FP8, _FP8),
        *_family(_B200_MMA, _FP8), *_family(_H100_MMA, _FP8),
        *_half(_ADA), _ADA_TF32, *_family(_ADA_FP8, _FP8),
    ]
}
"""Every (gpu, input format) with a published model. bf16 and tf32 tensor cores accumulate in
binary32 only; FP8 with fp16 output is modelled for the measured ``mma.sync`` paths only."""

#: Chips that share a model (``training_hw.md`` 4.1 table).
ALIASES = {"A2": "A100", "A30": "A100", "H200": "H100", "H200-mma.sync": "H100-mma.sync",
           "L40S": "Ada", "RTX-1000": "Ada", "RTX PRO 6000": "B200",
           "RTX PRO 6000-mma.sync": "B200-mma.sync"}


def supported() -> list[tuple[str, str, str]]:
    """Every supported (gpu, input format, output format), aliases excluded."""
    rows = []
    for (gpu, fmt), p in PRESETS.items():
        rows.append((gpu, fmt, "binary32"))
        if p.min_exponent_fp16 is not None:
            rows.append((gpu, fmt, "fp16"))
    return rows


def tensor_core_preset(gpu: str, input_format: str) -> TensorCorePreset:
    """The preset record of ``gpu`` (or an alias) and ``input_format`` (any catalogue name)."""
    name = ALIASES.get(gpu, gpu)
    fmt = _format_name(input_format)
    try:
        return PRESETS[(name, fmt)]
    except KeyError:
        raise UnsupportedTensorCoreError(
            f"gpu={gpu!r}, input_format={input_format!r}: no published model; supported: "
            f"{_listing()}; aliases: {ALIASES}") from None


def tensor_core_accumulation(gpu: str, input_format: str,
                             output_format: str = "binary32") -> FusedAccumulation:
    """The block-FMA accumulation of a tensor core.

    Example:
        >>> import numpy as np
        >>> acc = tensor_core_accumulation("A100", "fp16")
        >>> acc.run(np.array([[1.0]]), np.array([[1.0]]), np.array([[-(1 - 2.0**-24)]])).item()
        5.960464477539063e-08
    """
    preset = tensor_core_preset(gpu, input_format)
    out = _format_name(output_format)
    if (preset.gpu, preset.input_format, out) not in supported():
        if out == "fp16" and preset.input_format in _FP8:
            raise UnmodelledPathError(f"gpu={gpu!r}, input_format={input_format!r}, "
                                      f"output_format='fp16': {FP8_FP16_OUTPUT}")
        raise UnsupportedTensorCoreError(
            f"output_format={output_format!r} for gpu={gpu!r}, input_format={input_format!r}: "
            f"supported: {_listing()}")
    return preset.accumulation(out)


def tensor_core(gpu: str, input_format: str, output_format: str = "binary32"):
    """A :class:`~lowbit.emulator.datapath.Datapath` for a tensor core (operands = the input
    format, quantised RNE as the GPU's own conversion does; TF32 inputs are assumed already TF32:
    the GPU truncates FP32 data loaded into TF32 fragments, so quantise with TOWARD_ZERO first).

    Example:
        >>> dp = tensor_core("H200", "bf16")
        >>> dp.name, dp.accumulation.terms, dp.output_format.name
        ('H100 bf16 -> binary32', 16, 'binary32')
    """
    from ..emulator.datapath import Datapath
    acc = tensor_core_accumulation(gpu, input_format, output_format)
    preset = tensor_core_preset(gpu, input_format)
    return Datapath(a=acc.a_format, b=acc.b_format, accumulation=acc,
                    name=f"{preset.gpu} {preset.input_format} -> {acc.output.name}",
                    source=preset.source)


def _format_name(fmt: object) -> str:
    return get_format(fmt).name


def _listing() -> str:
    return ", ".join(f"{g}/{f}->{o}" for g, f, o in supported())

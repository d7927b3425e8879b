"""A small real tensor shipped with lowbit, so that the demo needs no download and no matplotlib.

Example:
    >>> from lowbit.data import grace_hopper
    >>> grace_hopper().shape, grace_hopper().dtype
    ((150, 128), dtype('uint8'))
"""

from __future__ import annotations

import base64
import hashlib
import zlib

import numpy as np

__all__ = ["grace_hopper", "grace_hopper_standardized"]


def grace_hopper() -> np.ndarray:
    """Greyscale pixels (0..255) of the public-domain Grace Hopper portrait, shape (150, 128).

    The same photograph as matplotlib's ``sample_data/grace_hopper.jpg``, box-downsampled by 4;
    the bytes are checked against their SHA-256 on every load.
    """
    from . import _grace_hopper as src
    raw = zlib.decompress(base64.b64decode(src.PIXELS))
    if hashlib.sha256(raw).hexdigest() != src.SHA256:
        raise RuntimeError("lowbit/data/_grace_hopper.py is corrupt (SHA-256 mismatch)")
    return np.frombuffer(raw, dtype=np.uint8).reshape(src.SHAPE).copy()


def grace_hopper_standardized() -> np.ndarray:
    """The portrait as float32 with zero mean and unit standard deviation (computed in float64).

    Example:
        >>> x = grace_hopper_standardized()
        >>> x.dtype, round(float(x.mean()), 6), round(float(x.std()), 4)
        (dtype('float32'), 0.0, 1.0)
    """
    p = grace_hopper().astype(np.float64)
    return ((p - p.mean()) / p.std()).astype(np.float32)

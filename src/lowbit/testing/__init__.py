"""Public testing helpers: hypothesis strategies over formats, values and codes, and exact oracles.

``lowbit.testing.oracles`` needs nothing beyond lowbit; ``lowbit.testing.strategies`` needs
``hypothesis`` (the ``test`` extra) and is imported on first use.

Example:
    >>> from lowbit.testing import oracles, strategies
    >>> callable(strategies.formats) and callable(oracles.round_exact)
    True
"""

from __future__ import annotations

from . import oracles

__all__ = ["oracles", "strategies"]


def __getattr__(name: str):
    if name == "strategies":
        import importlib
        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module 'lowbit.testing' has no attribute {name!r}")

"""Public testing helpers: hypothesis strategies over formats, values and codes, and exact oracles.

``lowbit.testing.oracles`` needs nothing beyond lowbit; ``lowbit.testing.strategies`` needs
``hypothesis`` (the ``test`` extra). Importing this package imports both.

Example:
    >>> from lowbit.testing import oracles, strategies
    >>> callable(strategies.formats) and callable(oracles.round_exact)
    True
"""

from __future__ import annotations

from . import oracles, strategies

__all__ = ["oracles", "strategies"]

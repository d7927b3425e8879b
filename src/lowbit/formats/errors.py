"""Error classes raised on bad input.

Every message names the argument, the value received and what is allowed, so that the caller can
fix the call without reading the source.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["InvalidArgument", "InvalidFormatError", "UnknownFormatError", "close_names"]


class InvalidArgument(TypeError):
    """An argument has the wrong type (an array of strings, a seed that is a float, ...)."""


class InvalidFormatError(ValueError):
    """A format record whose fields contradict each other or are out of range."""


class UnknownFormatError(KeyError, ValueError):
    """A format name that is not in the catalogue; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


def close_names(name: str, names: Iterable[str], n: int = 5) -> list[str]:
    """The catalogue names closest to ``name``, best first."""
    return difflib.get_close_matches(name.lower(), list(names), n=n, cutoff=0.4)

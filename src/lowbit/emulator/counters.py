"""Events counted while a datapath runs: a small frozen record.

The kernels add into an int64 array of length 4 (the indices below); the public functions turn
it into a :class:`Counters` record. Counts are integers summed per output element, so they do not
depend on the thread count.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["Counters", "OVERFLOWS", "SATURATIONS", "FLUSHES", "LOST", "new_counter_array"]

OVERFLOWS, SATURATIONS, FLUSHES, LOST = range(4)


@dataclass(frozen=True, kw_only=True)
class Counters:
    """What happened in one call, summed over every rounding step of every output element.

    * ``overflows``: a finite exact result beyond the format's largest value became inf or NaN.
    * ``saturations``: a finite exact result beyond the largest value was clamped to +-max
      (for integer accumulators: a sum clamped or wrapped).
    * ``flushes``: a non-zero exact result rounded to zero.
    * ``lost``: a non-zero product (or partial sum) added to a non-zero accumulator left it
      unchanged -- entirely lost in alignment (swamping).

    Example:
        >>> Counters(overflows=0, saturations=1, flushes=0, lost=3).total
        4
    """

    overflows: int = 0
    saturations: int = 0
    flushes: int = 0
    lost: int = 0

    @classmethod
    def from_array(cls, counts: np.ndarray) -> Counters:
        """The record of a kernel's length-4 int64 count array."""
        c = [int(v) for v in np.asarray(counts).reshape(-1)[:4]]
        return cls(overflows=c[0], saturations=c[1], flushes=c[2], lost=c[3])

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def __add__(self, other: Counters) -> Counters:
        if not isinstance(other, Counters):
            return NotImplemented
        return Counters(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                           for f in fields(self)})


def new_counter_array() -> np.ndarray:
    """A zeroed count array in the layout the kernels write."""
    return np.zeros(4, dtype=np.int64)

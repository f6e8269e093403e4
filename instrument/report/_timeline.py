"""Each series over time: its points folded into time slots as they are read.

Slots are as long as the typical export interval, on a grid of multiples of that length,
so a slot holds about one interval of each process. Processes export out of phase with
the grid and with each other, so an interval usually straddles two slots: its count (or a
counter's increase) is shared between them in proportion to the overlap, so that the
counts over time stay smooth, and its histogram counts in the percentiles of both, so
that a slot with counts always has percentiles. A gauge's value belongs to the slot
holding the moment it was reported (the end of its interval).

The span is only known at the end, so whenever the slots in use span more than twice
`MAX_SLOTS`, neighbours are merged in pairs (the grid doubles). Memory is bounded per
series, not per line.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Any

from .._histogram import HistogramData
from .._model import Kind, Point
from ._series import HistogramSum

MAX_SLOTS = 60  # time slots in the plots over time
SAMPLE = 64  # points whose intervals set the slot width
SHORTEST = 1e-3  # seconds: the narrowest slot


class Slot:
    """One series in one time slot."""

    __slots__ = ("_histogram", "amount", "latest", "value")

    def __init__(self) -> None:
        self._histogram: HistogramSum | None = None
        self.amount = 0.0  # the share of counts (histograms) or of the increase (counters) in this slot
        self.value: float | None = None  # a gauge's last value
        self.latest = -math.inf

    @property
    def histogram(self) -> HistogramData | None:
        """The histogram of every interval overlapping the slot."""
        return self._histogram.freeze() if self._histogram is not None else None

    def add_histogram(self, histogram: HistogramData) -> None:
        if self._histogram is None:
            self._histogram = HistogramSum(histogram)
        else:
            self._histogram.add(histogram)

    def set(self, value: float | None, when: float) -> None:
        if when >= self.latest:
            self.value, self.latest = value, when

    def absorb(self, other: Slot) -> None:
        histogram = other.histogram
        if histogram is not None:
            self.add_histogram(histogram)
        self.amount += other.amount
        self.set(other.value, other.latest)


class Timeline:
    """Time slots of every series; `slots()` gives them once everything is read."""

    def __init__(self, max_slots: int = MAX_SLOTS) -> None:
        self.max_slots = max_slots
        self.width: float | None = None  # seconds per slot, once SAMPLE points have been seen
        self._waiting: list[tuple[tuple[Any, ...], Point]] = []
        self._series: dict[tuple[Any, ...], dict[int, Slot]] = {}
        self._low = 0  # the first and last slot in use, once there is one
        self._high = -1

    def add(self, key: tuple[Any, ...], point: Point) -> None:
        """Put *point*, of the series *key*, into the slots it overlaps."""
        if self.width is None:
            self._waiting.append((key, point))
            if len(self._waiting) >= SAMPLE:
                self._start()
            return
        first, last = self._reach(point)
        if self._high < self._low:  # the first point placed
            self._low, self._high = first, last
        while max(last, self._high) - min(first, self._low) >= 2 * self.max_slots:
            self._coarsen(2)
            first, last = self._reach(point)
        self._low, self._high = min(self._low, first), max(self._high, last)
        slots = self._series.get(key)
        if slots is None:
            slots = self._series[key] = {}
        if point.kind == Kind.GAUGE:
            _slot(slots, last).set(point.value, point.end_time)
            return
        histogram = point.histogram
        total = histogram.count if histogram is not None else float(point.value or 0)
        if first == last:  # most points: within one slot
            slot = _slot(slots, first)
            slot.amount += total
            if histogram is not None:
                slot.add_histogram(histogram)
            return
        start, end, width = point.start_time, point.end_time, self.width
        for index in range(first, last + 1):
            overlap = min(end, (index + 1) * width) - max(start, index * width)
            slot = _slot(slots, index)
            slot.amount += total * max(0.0, overlap) / (end - start)
            if histogram is not None:
                slot.add_histogram(histogram)

    def _reach(self, point: Point) -> tuple[int, int]:
        """The first and last slot *point*'s interval overlaps (an end on a slot boundary is not in the next)."""
        assert self.width is not None
        first = math.floor(point.start_time / self.width)
        last = max(first, math.ceil(point.end_time / self.width) - 1)
        if point.kind == Kind.GAUGE:
            first = last
        return first, last

    def _start(self) -> None:
        """Choose the slot width from the intervals seen so far, and place their points."""
        waiting, self._waiting = self._waiting, []
        self.width = max(SHORTEST, median(p.end_time - p.start_time for _, p in waiting)) if waiting else 1.0
        for key, point in waiting:
            self.add(key, point)

    def _coarsen(self, factor: int) -> None:
        """Merge each run of *factor* slots on the grid into one."""
        assert self.width is not None
        self.width *= factor
        for key, slots in self._series.items():
            merged: dict[int, Slot] = {}
            for index, slot in slots.items():
                target = merged.get(index // factor)
                if target is None:
                    merged[index // factor] = slot
                else:
                    target.absorb(slot)
            self._series[key] = merged
        self._low //= factor
        self._high //= factor

    def slots(self) -> tuple[list[float], dict[tuple[Any, ...], list[Slot | None]]]:
        """Slot start times, and per series its slot (or None) at each."""
        if self.width is None:
            self._start()
        if not self._series:
            return [], {}
        factor = math.ceil((self._high - self._low + 1) / self.max_slots)
        while factor > 1 and self._high // factor - self._low // factor >= self.max_slots:
            factor += 1  # the grid need not start at a multiple of the factor
        if factor > 1:
            self._coarsen(factor)
        assert self.width is not None
        low, high, width = self._low, self._high, self.width
        starts = [index * width for index in range(low, high + 1)]
        return starts, {key: [slots.get(i) for i in range(low, high + 1)] for key, slots in self._series.items()}


def _slot(slots: dict[int, Slot], index: int) -> Slot:
    found = slots.get(index)
    if found is None:
        found = slots[index] = Slot()
    return found

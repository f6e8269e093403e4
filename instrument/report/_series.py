"""One series folded together point by point, as the lines are read.

Counters add up, the latest gauge value wins, histograms add their bucket counts in
place (at the coarsest scale among them: bucket bounds nest, so that is exact). The
same rules as ``_model.merge``, without keeping the points: memory is one histogram
per series, whatever the number of lines.
"""

from __future__ import annotations

from .._histogram import HistogramData
from .._model import Kind, Point


class HistogramSum:
    """The running sum of histograms: counts, sum, min, max and buckets."""

    __slots__ = ("count", "max", "min", "negative", "positive", "scale", "sum", "zero_count")

    def __init__(self, first: HistogramData) -> None:
        self.count = first.count
        self.sum = first.sum
        self.min = first.min
        self.max = first.max
        self.scale = first.scale
        self.zero_count = first.zero_count
        self.positive = dict(first.positive)
        self.negative = dict(first.negative)

    def add(self, histogram: HistogramData) -> None:
        if histogram.scale < self.scale:
            self._downscale(histogram.scale)
        elif histogram.scale > self.scale:
            histogram = histogram.downscale(self.scale)
        self.count += histogram.count
        self.sum += histogram.sum
        self.min = min(self.min, histogram.min)
        self.max = max(self.max, histogram.max)
        self.zero_count += histogram.zero_count
        _add(self.positive, histogram.positive)
        if histogram.negative:
            _add(self.negative, histogram.negative)

    def _downscale(self, scale: int) -> None:
        shift = self.scale - scale
        for side in (self.positive, self.negative):
            merged: dict[int, int] = {}
            for index, n in side.items():
                merged[index >> shift] = merged.get(index >> shift, 0) + n
            side.clear()
            side.update(merged)
        self.scale = scale

    def freeze(self) -> HistogramData:
        return HistogramData(
            count=self.count, sum=self.sum, min=self.min, max=self.max, scale=self.scale,
            zero_count=self.zero_count, positive=self.positive, negative=self.negative,
        )


def _add(counts: dict[int, int], more: dict[int, int]) -> None:
    """Add *more*'s bucket counts into *counts* (a plain loop: Counter.update checks its argument's type first)."""
    get = counts.get
    for index, n in more.items():
        counts[index] = get(index, 0) + n


class Series:
    """The points of one series read so far, folded into one."""

    __slots__ = ("end_time", "histogram", "kind", "latest", "name", "start_time", "tags", "unit", "value")

    def __init__(self, point: Point) -> None:
        self.name = point.name
        self.kind = point.kind
        self.unit = point.unit
        self.tags = point.tags
        self.start_time = point.start_time
        self.end_time = point.end_time
        self.latest = point.end_time  # when the gauge value was set
        self.value = point.value
        self.histogram = HistogramSum(point.histogram) if point.histogram is not None else None

    def add(self, point: Point) -> None:
        """Fold in another point of this series (same name, kind, unit and tags)."""
        self._fold(point.start_time, point.end_time, point.end_time, point.value, point.histogram)

    def absorb(self, other: Series) -> None:
        """Fold in everything *other*, of the same series, holds."""
        histogram = other.histogram.freeze() if other.histogram is not None else None
        self._fold(other.start_time, other.end_time, other.latest, other.value, histogram)

    def _fold(
        self, start: float, end: float, latest: float, value: float | None, histogram: HistogramData | None
    ) -> None:
        self.start_time = min(self.start_time, start)
        self.end_time = max(self.end_time, end)
        if histogram is not None:
            if self.histogram is None:
                self.histogram = HistogramSum(histogram)
            else:
                self.histogram.add(histogram)
        elif self.kind == Kind.COUNTER:
            self.value = (self.value or 0) + (value or 0)
        elif latest >= self.latest:  # a gauge: the value set last wins
            self.value = value
            self.latest = latest

    def point(self) -> Point:
        histogram = self.histogram.freeze() if self.histogram is not None else None
        return Point(
            self.name, self.kind, self.unit, self.tags, self.start_time, self.end_time,
            value=self.value, histogram=histogram,
        )

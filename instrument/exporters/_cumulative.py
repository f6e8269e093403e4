"""Delta batches in, cumulative series out: for backends that want totals since start.

Prometheus and OTLP with cumulative temporality report, for every series ever seen,
its total since it first appeared: counters and histograms add up, gauges keep the
last value. The state is bounded by the number of series, which the cardinality
limit bounds.
"""

from __future__ import annotations

import threading

from .._model import Batch, Point


def _key(point: Point) -> tuple[object, ...]:
    return (point.name, point.kind, point.unit, tuple(sorted(point.tags.items(), key=lambda kv: kv[0])))


class Cumulative:
    """Totals per series since each series was first seen. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[object, ...], Point] = {}

    def add(self, batch: Batch) -> None:
        """Fold a delta batch in."""
        with self._lock:
            for point in batch.points:
                self._add(point)

    def add_points(self, points: list[Point]) -> None:
        with self._lock:
            for point in points:
                self._add(point)

    def _add(self, point: Point) -> None:
        key = _key(point)
        seen = self._series.get(key)
        if seen is None:
            self._series[key] = Point(
                point.name, point.kind, point.unit, point.tags, point.start_time, point.end_time,
                value=point.value, histogram=point.histogram,
            )
            return
        if point.kind == "counter":
            seen.value = (seen.value or 0) + (point.value or 0)
        elif point.kind == "gauge":
            if point.end_time >= seen.end_time:
                seen.value = point.value
        elif point.histogram is not None:
            seen.histogram = point.histogram if seen.histogram is None else seen.histogram.merge(point.histogram)
        seen.end_time = max(seen.end_time, point.end_time)

    def points(self) -> list[Point]:
        """Every series' cumulative point (copies), in first-seen order."""
        with self._lock:
            return [
                Point(p.name, p.kind, p.unit, p.tags, p.start_time, p.end_time, value=p.value, histogram=p.histogram)
                for p in self._series.values()
            ]

    def __len__(self) -> int:
        return len(self._series)

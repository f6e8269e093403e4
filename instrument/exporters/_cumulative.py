"""Delta batches in, cumulative series out: for backends that want totals since start.

Prometheus and OTLP with cumulative temporality report, for every series ever seen,
its total since it first appeared: counters and histograms add up, gauges keep the
last value. The state is bounded by the number of series, which the cardinality
limit bounds.
"""

from __future__ import annotations

import threading

from .._model import Batch, Point, copy, fold, series_key


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
        key = series_key(point)
        seen = self._series.get(key)
        if seen is None:
            self._series[key] = copy(point)
        else:
            fold(seen, point, keep_start=True)

    def points(self) -> list[Point]:
        """Every series' cumulative point (copies), in first-seen order."""
        with self._lock:
            return [copy(p) for p in self._series.values()]

    def __len__(self) -> int:
        return len(self._series)

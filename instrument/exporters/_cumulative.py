"""Delta batches in, cumulative series out: for backends that want totals since start.

Prometheus and OTLP with cumulative temporality report, for every series ever seen,
its total since it first appeared: counters and histograms add up, gauges keep the
last value. The state is bounded by the number of series, which the cardinality
limit bounds.

An additive gauge (`Point.additive`: one process's share of a total, such as its
requests in progress) is kept per source process and reported as the sum over the
processes still running, as prometheus_client's multiprocess ``livesum`` does: a
worker that exits, or is killed mid-request, stops counting.
"""

from __future__ import annotations

import os
import threading

from .._model import Batch, Point, copy, fold, series_key


class Cumulative:
    """Totals per series since each series was first seen. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[object, ...], Point] = {}
        self._shares: dict[tuple[object, ...], dict[int, int | float]] = {}  # additive: pid -> value

    def add(self, batch: Batch) -> None:
        """Fold a delta batch of this process in."""
        self.add_points(batch.points)

    def add_points(self, points: list[Point], source: int | None = None) -> None:
        """Fold points in; *source* is the pid of the process they come from (default: this one)."""
        pid = os.getpid() if source is None else source
        with self._lock:
            for point in points:
                self._add(point, pid)

    def _add(self, point: Point, pid: int) -> None:
        key = series_key(point)
        seen = self._series.get(key)
        if seen is None:
            self._series[key] = copy(point)
        else:
            fold(seen, point, keep_start=True)
        if point.additive and point.value is not None:
            self._shares.setdefault(key, {})[pid] = point.value

    def forget(self, point: Point) -> None:
        """Stop reporting *point*'s series (an exporter could not encode it)."""
        key = series_key(point)
        with self._lock:
            self._series.pop(key, None)
            self._shares.pop(key, None)

    def points(self) -> list[Point]:
        """Every series' cumulative point (copies), in first-seen order."""
        with self._lock:
            gone = {pid for shares in self._shares.values() for pid in shares if not _running(pid)}
            found = []
            for key, point in self._series.items():
                point = copy(point)
                shares = self._shares.get(key)
                if shares is not None:
                    for pid in gone.intersection(shares):
                        del shares[pid]
                    point.value = sum(shares.values())
                found.append(point)
            return found

    def __len__(self) -> int:
        return len(self._series)


def _running(pid: int) -> bool:
    """Whether process *pid* still exists (a zombie not yet reaped counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a worker that switched user
        return True
    return True

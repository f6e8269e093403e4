"""The collector's side: buffered records in, one `Batch` per interval out.

Counters are summed, gauges take their last value (reported in the intervals in
which they were set), timers and `record()` values go into exponential histograms.
State is per interval (delta): `snapshot()` hands it over and starts afresh, so
memory is bounded by the number of series, never by the number of records. Only
the thread holding the pipeline's drain lock calls in here.
"""

from __future__ import annotations

import time
from typing import Any

from . import _buffers, _log
from ._histogram import HistogramState
from ._metrics import COUNTER, EXPORTED_KIND, GAUGE, TIMER, UNSET, Series, all_metrics, declare_series
from ._model import Batch, Kind, Point
from ._process import ProcessMetrics

NANOSECONDS_PER_SECOND = 1e9

SELF_DROPPED = "instrument.records.dropped"
_BUFFER_FULL = declare_series(SELF_DROPPED, COUNTER, {"reason": "buffer_full"})


class Aggregator:
    def __init__(self) -> None:
        self._counters: dict[Series, int | float] = {}
        self._histograms: dict[Series, HistogramState] = {}
        self._records = 0
        self.start_time = time.time()
        self.process = ProcessMetrics()  # fresh in a forked child, with the collector's state

    def consume(self, series: Series, values: list[Any]) -> None:
        """Fold one drained chunk of *series*' records into this interval's state."""
        self._records += len(values)
        if series.metric.kind == COUNTER:
            self._counters[series] = self._counters.get(series, 0) + sum(values)
            return
        state = self._histograms.get(series)
        if state is None:
            divisor = NANOSECONDS_PER_SECOND if series.metric.kind == TIMER else 1.0
            state = self._histograms[series] = HistogramState(divisor)
        state.add_many(values)

    def add(self, series: Series, value: int | float) -> None:
        """Count *value* into a counter directly (for events that bypass the buffers)."""
        self._counters[series] = self._counters.get(series, 0) + value

    def drain(self) -> int:
        return _buffers.drain(self.consume)

    def discard(self) -> int:
        """Empty the buffers without aggregating (instrumentation switched off)."""
        return _buffers.drain(lambda series, values: None)

    def empty(self) -> bool:
        """Whether a snapshot now would have no point: nothing aggregated, no gauge set."""
        if self._counters or self._histograms:
            return False
        return not any(
            series.changed for metric in all_metrics() if metric.kind == GAUGE for series in metric.all_series()
        )

    def snapshot(self, seq: int, runtime: bool = False) -> Batch:
        """This interval's points (with the process's own, `_process`, if *runtime*); the
        state restarts empty."""
        self.add(_BUFFER_FULL, _buffers.DROPPED.take())
        end = time.time()
        start = self.start_time
        points = []
        for series, total in self._counters.items():
            metric = series.metric
            points.append(Point(metric.name, Kind.COUNTER, metric.unit, dict(series.tags), start, end, value=total))
        for series, state in self._histograms.items():
            metric = series.metric
            try:
                frozen = state.freeze()
            except (OverflowError, ValueError):  # cannot happen for checked values; never wedge
                _log.error_once(("freeze", metric.name), "instrument: dropped an unexportable histogram of %r",
                                metric.name, exc_info=True)
                continue
            points.append(Point(metric.name, EXPORTED_KIND[metric.kind], metric.unit, dict(series.tags), start, end,
                                histogram=frozen))
        for metric in all_metrics():
            if metric.kind != GAUGE:
                continue
            for series in metric.all_series():
                if not series.changed:
                    continue
                series.changed = False
                value = series.value
                if value is not UNSET:
                    points.append(Point(
                        metric.name, Kind.GAUGE, metric.unit, dict(series.tags), start, end, value=value,
                        additive=metric.additive,
                    ))
        if runtime:
            points.extend(self.process.points(start, end))
        batch = Batch(seq, start, end, points, self._records)
        self._counters = {}
        self._histograms = {}
        self._records = 0
        self.start_time = end
        return batch

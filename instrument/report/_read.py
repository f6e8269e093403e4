"""Reading jsonl exports, streamed: each line is folded into its series as it is read.

Each line is one series over one interval of one process. The lines of a series are
merged: counters add up, gauges keep the latest value, histograms add bucket counts.
Merging histograms is exact because they share one exponential bucket layout, so the
p99 shown is the p99 of every recorded value (within the buckets' 1 %), not an average
of per-interval or per-worker p99s. Memory grows with the number of series, never with
the number of lines.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from .._model import Point, point_from_dict, series_key
from ..exporters._table import is_self_metric, ordered
from ._progress import Progress
from ._series import Series
from ._timeline import MAX_SLOTS, Slot, Timeline

PROGRESS_EVERY = 4096  # lines between progress updates


class ReportError(Exception):
    """An input cannot be read, or a line of it is not a metric; the message says where."""


class Report:
    """What was read: every series merged over the whole span, and over time slots."""

    def __init__(
        self, sources: Sequence[str], metrics: Sequence[str] = (), self_metrics: bool = False, slots: int = MAX_SLOTS
    ) -> None:
        self.sources = list(sources)
        self.metrics = list(metrics)
        self.self_metrics = self_metrics  # show instrument's own metrics (instrument.*)
        self.lines = 0
        self.skipped: list[str] = []  # "FILE:LINE: reason" for each truncated last line left out
        self._series: dict[tuple[Any, ...], Series] = {}
        self._timeline = Timeline(slots)
        self._slots: tuple[list[float], dict[tuple[Any, ...], list[Slot | None]]] | None = None
        self.resources: dict[tuple[tuple[str, str], ...], None] = {}  # each distinct resource of the lines

    def describe(self, resource: object) -> None:
        """Note the ``resource`` field of a line (the attributes the process was set to describe)."""
        if isinstance(resource, dict) and resource:
            self.resources.setdefault(tuple(sorted((str(k), str(v)) for k, v in resource.items())), None)

    def resource_lines(self) -> list[str]:
        """``resource: key=value, ...`` for each distinct resource read."""
        return ["resource: " + ", ".join(f"{k}={v}" for k, v in found) for found in self.resources]

    @classmethod
    def of(cls, points: Iterable[Point], sources: Sequence[str] = ("-",), **options: Any) -> Report:
        """A report of *points*, as if read from *sources*."""
        report = cls(sources, **options)
        for point in points:
            report.lines += 1
            report.add(point)
        return report

    def add(self, point: Point) -> None:
        """Fold *point* into its series and its time slot."""
        key = series_key(point)
        found = self._series.get(key)
        if found is None:
            self._series[key] = Series(point)
        else:
            found.add(point)
        self._timeline.add(key, point)
        self._slots = None

    def all_series(self) -> list[Point]:
        """One point per series over the whole span, instrument's own included, sorted by name and tags."""
        return ordered(series.point() for series in self._series.values())

    def series(self) -> list[Point]:
        """The series shown: instrument's own only when asked for."""
        return [p for p in self.all_series() if self.self_metrics or not is_self_metric(p)]

    def span(self) -> tuple[float, float]:
        if not self._series:
            return (math.nan, math.nan)
        return (
            min(s.start_time for s in self._series.values()),
            max(s.end_time for s in self._series.values()),
        )

    def title(self) -> str:
        files = ", ".join(self.sources)
        shown = len(self.series())
        if not shown:
            matching = f" matching {', '.join(self.metrics)}" if self.metrics and self.lines else ""
            hidden = " (instrument's own are hidden: --self-metrics shows them)" if self._series else ""
            return f"instrument report: no metrics{matching} in {files}{hidden}"
        start, end = self.span()
        return (
            f"instrument report: {shown} series from {self.lines} lines of {files}, "
            f"{_clock(start)} to {_clock(end)} UTC ({duration(end - start)})"
        )

    def timeline(self) -> tuple[list[float], dict[tuple[Any, ...], list[Slot | None]]]:
        """Slot start times, and per series its `Slot` (or None) at each (see `_timeline`)."""
        if self._slots is None:
            self._slots = self._timeline.slots()
        return self._slots

    def slot_width(self) -> float:
        """Seconds per time slot (0 before anything was read)."""
        self.timeline()
        return self._timeline.width or 0.0


def read(
    paths: Sequence[str],
    metrics: Sequence[str] = (),
    stdin: IO[bytes] | None = None,
    self_metrics: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Read jsonl exports (``-`` is standard input), keeping metrics matching any glob in *metrics*.

    A last line without its newline (a process killed mid-write) is left out and noted;
    any other line that is not a metric raises ReportError naming the file and line.
    """
    report = Report([_label(p) for p in paths], metrics, self_metrics)
    wanted: dict[str, bool] = {}  # metric name -> whether it matches, decided once per name
    for path in paths:
        for point in _points(path, report, stdin, progress):
            keep = wanted.get(point.name)
            if keep is None:
                keep = wanted[point.name] = not metrics or any(fnmatch.fnmatchcase(point.name, m) for m in metrics)
            if keep:
                report.add(point)
    if progress is not None:
        progress.done()
    return report


def _points(path: str, report: Report, stdin: IO[bytes] | None, progress: Progress | None) -> Iterator[Point]:
    """The points of one file, in order; counts its lines into *report*."""
    label = _label(path)
    try:
        with _opened(path, stdin) as file:
            if progress is not None:
                progress.file(label, _size(file))
            done = 0
            for number, raw in enumerate(file, 1):
                done += len(raw)
                if progress is not None and number % PROGRESS_EVERY == 0:
                    progress.update(done, number)
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise ReportError(f"{label} is not a jsonl export (not UTF-8 text: {exc.reason})") from None
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    point = point_from_dict(data)
                except ValueError as exc:
                    reason = f"not JSON ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else str(exc)
                    if not line.endswith("\n"):  # only the last line can lack it
                        report.skipped.append(f"{label}:{number}: {reason}; a truncated last line, left out")
                        continue
                    raise ReportError(f"{label}:{number}: {reason}") from None
                report.lines += 1
                report.describe(data.get("resource"))
                yield point
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None


def _label(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _opened(path: str, stdin: IO[bytes] | None) -> contextlib.AbstractContextManager[IO[bytes]]:
    """The file to read, line by line, as bytes; standard input is left open."""
    if path == "-":
        return contextlib.nullcontext(stdin or sys.stdin.buffer)
    return open(path, "rb")


def _size(file: IO[bytes]) -> int | None:
    """The size of a regular file; None for a pipe or a terminal."""
    try:
        status = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return status.st_size if status.st_size and not os.isatty(file.fileno()) else None


def _clock(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"

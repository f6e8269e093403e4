"""``instrument report``: one table, and optionally an HTML page of plots, from jsonl exports.

Each jsonl line is one series over one interval of one process. The report merges
the lines of each series: counters add up, gauges keep the latest value, histograms
add bucket counts. Merging histograms is exact because they share one exponential
bucket layout, so the p99 shown is the p99 of every recorded value (within the
buckets' 1 %), not an average of per-interval or per-worker p99s.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

from ._model import Point, merge, point_from_dict, series_key

MAX_SLOTS = 60  # time slots in the plots over time


class ReportError(Exception):
    """An input cannot be read, or a line of it is not a metric; the message says where."""


class Report:
    """What was read: the points of every line, and where they came from."""

    def __init__(
        self, points: list[Point], sources: list[str], lines: int, skipped: list[str], metrics: Sequence[str] = ()
    ) -> None:
        self.points = points
        self.sources = sources
        self.lines = lines
        self.skipped = skipped  # "FILE:LINE: reason" for each truncated last line left out
        self.metrics = list(metrics)
        self._series: list[Point] | None = None

    def series(self) -> list[Point]:
        """One point per series over the whole span, sorted by name and tags."""
        if self._series is None:
            self._series = sorted(merge(self.points), key=_order)
        return self._series

    def span(self) -> tuple[float, float]:
        if not self.points:
            return (math.nan, math.nan)
        return (min(p.start_time for p in self.points), max(p.end_time for p in self.points))

    def title(self) -> str:
        start, end = self.span()
        files = ", ".join(self.sources)
        count = len(self.series())
        if not self.points:
            matching = f" matching {', '.join(self.metrics)}" if self.metrics and self.lines else ""
            return f"instrument report: no metrics{matching} in {files}"
        return (
            f"instrument report: {count} series from {self.lines} lines of {files}, "
            f"{_clock(start)} to {_clock(end)} UTC ({_duration(end - start)})"
        )

    def timeline(self, slots: int = MAX_SLOTS) -> tuple[list[float], dict[tuple[Any, ...], list[Point | None]]]:
        """Slot start times, and per series one merged point (or None) per slot.

        A slot is at least as long as the typical export interval, so that each holds
        whole intervals; a point belongs to the slot that holds the middle of its interval.
        """
        start, end = self.span()
        if not self.points:
            return [], {}
        intervals = sorted(p.end_time - p.start_time for p in self.points)
        width = max((end - start) / slots, intervals[len(intervals) // 2], 1e-3)
        count = max(1, min(slots, math.ceil((end - start) / width)))
        grouped: dict[tuple[Any, ...], list[list[Point]]] = {}
        for point in self.points:
            middle = (point.start_time + point.end_time) / 2
            index = min(count - 1, max(0, int((middle - start) / width)))  # clocks may step back
            grouped.setdefault(series_key(point), [[] for _ in range(count)])[index].append(point)
        timeline = {key: [merge(group)[0] if group else None for group in groups] for key, groups in grouped.items()}
        return [start + i * width for i in range(count)], timeline


def read(paths: Sequence[str], metrics: Sequence[str] = (), stdin: IO[str] | None = None) -> Report:
    """Read jsonl exports (``-`` is standard input), keeping metrics matching any glob in *metrics*.

    A last line without its newline (a process killed mid-write) is left out and noted;
    any other line that is not a metric raises ReportError naming the file and line.
    """
    points: list[Point] = []
    skipped: list[str] = []
    lines = 0
    for path in paths:
        label = "<stdin>" if path == "-" else path
        try:
            with _opened(path, stdin) as file:
                for number, line in enumerate(file, 1):
                    if not line.strip():
                        continue
                    try:
                        point = point_from_dict(json.loads(line))
                    except ValueError as exc:
                        reason = f"not JSON ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else str(exc)
                        if not line.endswith("\n"):  # only the last line can lack it
                            skipped.append(f"{label}:{number}: {reason}; a truncated last line, left out")
                            continue
                        raise ReportError(f"{label}:{number}: {reason}") from None
                    lines += 1
                    if not metrics or any(fnmatch.fnmatchcase(point.name, pattern) for pattern in metrics):
                        points.append(point)
        except OSError as exc:
            raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ReportError(f"{label} is not a jsonl export (not UTF-8 text: {exc.reason})") from None
    return Report(points, [("<stdin>" if p == "-" else p) for p in paths], lines, skipped, metrics)


def _opened(path: str, stdin: IO[str] | None) -> contextlib.AbstractContextManager[IO[str]]:
    """The file to read, line by line; standard input is left open."""
    if path == "-":
        return contextlib.nullcontext(stdin or sys.stdin)
    return open(path, encoding="utf-8-sig")


def text(report: Report) -> str:
    """The table printed on standard output: one row per series."""
    from .exporters._table import render

    return render(report.series(), report.title())


def _order(point: Point) -> tuple[str, list[tuple[str, str]]]:
    return (point.name, sorted((str(k), str(v)) for k, v in point.tags.items()))


def _clock(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def report_main(files: Iterable[str], html: str | None, metrics: Sequence[str]) -> int:
    """``instrument report``: print the table; write the HTML page when asked. Returns the exit status."""
    _tolerant(sys.stdout)
    _tolerant(sys.stderr)
    try:
        report = read(list(files), metrics)
    except ReportError as exc:
        print(f"instrument report: {exc}", file=sys.stderr)
        return 2
    for note in report.skipped:
        print(f"instrument report: {note}", file=sys.stderr)
    sys.stdout.write(text(report))
    if html is not None:
        from ._report_html import render

        page = render(report)
        try:
            # Tags from undecodable file names hold lone surrogates: written escaped.
            with open(html, "w", encoding="utf-8", errors="backslashreplace") as out:
                out.write(page)
        except OSError as exc:
            print(f"instrument report: cannot write {html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"instrument report: plots written to {html}", file=sys.stderr)
    return 0


def _tolerant(stream: IO[str]) -> None:
    """Write what the stream's encoding cannot hold (lone surrogates of undecodable
    file names in tags) as backslash escapes, instead of failing."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")

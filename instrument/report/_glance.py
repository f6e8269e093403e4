"""The summary at the top of the page: where the time goes and what fails.

- slowest routes: the HTTP server's routes (method and route, every status together), by p50;
- error rates: for each operation (a timer's series without its outcome tags), the share of
  calls recorded as failed (tagged ``error`` or ``error.type``);
- biggest p99s: every duration series, by p99.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._format import SECONDS
from .._histogram import HistogramData, merge_all
from .._model import Point

TOP = 6  # rows per list
SERVER = "http.server.request.duration"
ERROR_TAGS = ("error", "error.type")
OUTCOME_TAGS = (*ERROR_TAGS, "http.response.status_code")  # what tells the outcomes of one operation apart


@dataclass
class Line:
    """One line of a list: what it is about, its merged histogram, and the series to jump to."""

    name: str
    tags: dict[str, Any]
    unit: str
    histogram: HistogramData
    anchor: int  # the index, in the page's series, of the first series it covers
    errors: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.histogram.count if self.histogram.count else 0.0


def _operations(series: Sequence[Point], name: str | None = None) -> list[Line]:
    """Duration series grouped by everything but their outcome, with the failed calls counted."""
    groups: dict[tuple[Any, ...], tuple[Point, list[HistogramData], list[int]]] = {}
    for index, point in enumerate(series):
        if point.histogram is None or point.unit not in SECONDS or (name is not None and point.name != name):
            continue
        tags = {k: v for k, v in point.tags.items() if k not in OUTCOME_TAGS}
        key = (point.name, point.unit, tuple(sorted(tags.items())))
        _, histograms, counts = groups.setdefault(key, (point, [], [index, 0]))
        histograms.append(point.histogram)
        if any(tag in point.tags for tag in ERROR_TAGS):
            counts[1] += point.histogram.count
    lines = []
    for (metric, unit, tags), (_, histograms, (anchor, errors)) in groups.items():
        merged = merge_all(histograms)
        if merged is not None and merged.count:
            lines.append(Line(metric, dict(tags), unit, merged, anchor, errors))
    return lines


def slowest_routes(series: Sequence[Point]) -> list[Line]:
    """The HTTP server's routes, slowest p50 first."""
    routes = _operations(series, SERVER)
    return sorted(routes, key=lambda line: -line.histogram.quantile(0.5))[:TOP]


def error_rates(series: Sequence[Point]) -> list[Line]:
    """Operations with failed calls, highest share first."""
    failing = [line for line in _operations(series) if line.errors]
    return sorted(failing, key=lambda line: (-line.error_rate, -line.errors))[:TOP]


def biggest_p99s(series: Sequence[Point]) -> list[Line]:
    """Duration series (outcomes apart), highest p99 first."""
    lines = [
        Line(p.name, p.tags, p.unit, p.histogram, index)
        for index, p in enumerate(series)
        if p.histogram is not None and p.histogram.count and p.unit in SECONDS
    ]
    return sorted(lines, key=lambda line: -line.histogram.quantile(0.99))[:TOP]


def describe(name: str, tags: dict[str, Any]) -> str:
    """A short name for a series, after OpenTelemetry's conventions where they apply
    (``GET /loans/<int:loan_id>``, ``GET 127.0.0.1:8000``, ``sqlite SELECT``), else its tags;
    then its outcome (status code, error) when it has one."""
    rest = {k: v for k, v in tags.items() if k not in OUTCOME_TAGS}
    method = rest.pop("http.request.method", None)
    words: list[Any]
    if name.startswith("http.server."):
        words = [method, rest.pop("http.route", "(no route)")]
        rest.pop("url.scheme", None)
    elif name.startswith("http.client."):
        address, port = rest.pop("server.address", None), rest.pop("server.port", None)
        words = [method, f"{address}:{port}" if port is not None else address]
    elif name.startswith("db.client."):
        words = [rest.pop("db.system.name", rest.pop("db.system", None)), rest.pop("db.operation.name", None)]
        rest.pop("db.namespace", None)
    else:
        words = []
    words += [f"{k}={v}" for k, v in sorted(rest.items())]
    status = tags.get("http.response.status_code")
    if status is not None:
        words.append(status)
    error = next((str(tags[k]) for k in ERROR_TAGS if k in tags), None)
    if error is not None and error != str(status):
        words.append(f"error={error.rsplit('.', 1)[-1]}")  # the class: requests.exceptions.ReadTimeout is ReadTimeout
    return " ".join(str(w) for w in words if w is not None) or "(no tags)"

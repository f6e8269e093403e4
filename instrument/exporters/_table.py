"""A plain-text table of points, shared by the `console` and `summary` exporters."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .._model import Point


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    magnitude = abs(value)
    if magnitude >= 1:
        return f"{value:.3f}s"
    if magnitude >= 1e-3:
        return f"{value * 1e3:.3f}ms"
    if magnitude >= 1e-6:
        return f"{value * 1e6:.2f}us"
    return f"{value * 1e9:.0f}ns"


def _number(value: float | int | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return _seconds(float(value))
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):d}"
    return f"{value:.4g}"


def _tags(point: Point) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(point.tags.items()))


def render(points: Iterable[Point], title: str) -> str:
    """The table: one row per series, sorted by metric name then tags."""
    header = ("metric", "tags", "count", "p50", "p90", "p99", "max", "value")
    rows = [header]
    for point in sorted(points, key=lambda p: (p.name, _tags(p))):
        histogram = point.histogram
        if histogram is not None:
            rows.append((
                point.name,
                _tags(point),
                str(histogram.count),
                _number(histogram.quantile(0.5), point.unit),
                _number(histogram.quantile(0.9), point.unit),
                _number(histogram.quantile(0.99), point.unit),
                _number(histogram.max, point.unit),
                "",
            ))
        else:
            rows.append((point.name, _tags(point), "", "", "", "", "", _number(point.value, point.unit)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"

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


def format_value(value: float | int | None, unit: str) -> str:
    """*value* for people: seconds with a readable unit, whole numbers without a point."""
    if value is None:
        return "-"
    if unit == "s":
        return _seconds(float(value))
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):d}"
    return f"{value:.4g}"


def format_tags(point: Point) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(point.tags.items()))


HEADER = ("metric", "tags", "count", "p50", "p90", "p99", "max", "value")


def row(point: Point) -> tuple[str, ...]:
    """The cells of one series' row, under HEADER."""
    histogram = point.histogram
    if histogram is None:
        return (point.name, format_tags(point), "", "", "", "", "", format_value(point.value, point.unit))
    return (
        point.name,
        format_tags(point),
        str(histogram.count),
        format_value(histogram.quantile(0.5), point.unit),
        format_value(histogram.quantile(0.9), point.unit),
        format_value(histogram.quantile(0.99), point.unit),
        format_value(histogram.max, point.unit),
        "",
    )


def render(points: Iterable[Point], title: str) -> str:
    """The table: one row per series, sorted by metric name then tags."""
    rows = [HEADER] + [row(point) for point in sorted(points, key=lambda p: (p.name, format_tags(p)))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [title]
    for cells in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"

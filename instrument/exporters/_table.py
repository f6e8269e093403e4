"""The plain-text table of the `console` and `summary` exporters and of ``instrument report``.

One row per series, sorted by metric then tags: histograms fill count, the quantiles of
``_model.QUANTILES`` and max; counters and gauges fill value. Every value carries its unit
(see ``_format``); numbers are aligned right. instrument's own metrics (``instrument.*``),
and the process's runtime metrics (``_process``), are left out unless asked for, and
then follow in a section of their own; left out, one line still says when records were
dropped or exports failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._format import format_number, format_value
from .._histogram import HistogramData
from .._model import QUANTILES, Point
from .._process import is_runtime_metric

SELF_PREFIX = "instrument."
HEADER = ("metric", "tags", "count", *(name for name, _ in QUANTILES), "max", "value")
TEXT_COLUMNS = 2  # metric and tags align left; the numbers right
SELF_SECTION = "instrument's own metrics:"


def is_self_metric(point: Point) -> bool:
    """instrument's own metrics, and the process and runtime metrics it samples."""
    return point.name.startswith(SELF_PREFIX) or is_runtime_metric(point.name)


def format_tags(point: Point) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(point.tags.items()))


def row(point: Point) -> tuple[str, ...]:
    """The cells of one series' row, under HEADER."""
    histogram = point.histogram
    if histogram is None:
        return (point.name, format_tags(point), *[""] * (len(HEADER) - 3), format_value(point.value, point.unit))
    quantiles = (format_value(quantile(histogram, q), point.unit) for _, q in QUANTILES)
    return (
        point.name, format_tags(point), str(histogram.count), *quantiles, format_value(histogram.max, point.unit), ""
    )


def quantile(histogram: HistogramData, q: float) -> float:
    """The *q*-quantile, as a whole number when the values are whole numbers (their min, max
    and sum are) and one lies within the quantile's bucket: rows returned, retries, items."""
    value = histogram.quantile(q)
    if not all(float(x).is_integer() for x in (histogram.min, histogram.max, histogram.sum)):
        return value
    whole = round(value)
    return float(whole) if abs(whole - value) <= abs(value) * (histogram.base - 1) else value


def ordered(points: Iterable[Point]) -> list[Point]:
    """Sorted by metric name, then tags."""
    return sorted(points, key=lambda p: (p.name, format_tags(p)))


def table(points: Iterable[Point]) -> list[str]:
    """The header and one aligned line per series."""
    rows = [HEADER] + [row(point) for point in ordered(points)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return [
        "  ".join(
            cell.ljust(width) if i < TEXT_COLUMNS else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()
        for cells in rows
    ]


def losses(points: Iterable[Point]) -> str | None:
    """One line saying what instrument lost, from its own metrics; None when it lost nothing."""
    dropped: dict[str, float] = {}
    failed: dict[str, float] = {}
    for point in points:
        if point.name == "instrument.records.dropped" and point.value:
            reason = str(point.tags.get("reason", "?"))
            dropped[reason] = dropped.get(reason, 0) + point.value
        elif point.name == "instrument.export.failures" and point.value:
            exporter = str(point.tags.get("exporter", "?"))
            failed[exporter] = failed.get(exporter, 0) + point.value
    said = []
    if dropped:
        said.append(f"{format_number(sum(dropped.values()))} records dropped ({_split(dropped)})")
    if failed:
        said.append(f"{format_number(sum(failed.values()))} exports failed ({_split(failed)})")
    return f"instrument lost data: {'; '.join(said)}" if said else None


def _split(counts: dict[str, float]) -> str:
    return ", ".join(f"{key} {format_number(n)}" for key, n in sorted(counts.items()))


def render(points: Sequence[Point], title: str, *, self_metrics: bool = False) -> str:
    """The title, the table of the application's series, then instrument's own: their
    section when *self_metrics*, else a line if they say something was lost."""
    own = [p for p in points if is_self_metric(p)]
    lines = [title, *table(p for p in points if not is_self_metric(p))]
    if self_metrics and own:
        lines += ["", SELF_SECTION, *table(own)]
    elif not self_metrics and (note := losses(own)):
        lines.append(note)
    return "\n".join(lines) + "\n"


def worth_printing(points: Sequence[Point], self_metrics: bool) -> bool:
    """Whether a table of *points* shows anything: a series of the application's, a loss,
    or (when asked for) instrument's own series."""
    own = [p for p in points if is_self_metric(p)]
    return len(own) < len(points) or bool(own and self_metrics) or losses(own) is not None

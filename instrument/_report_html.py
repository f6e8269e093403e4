"""The HTML page of ``instrument report --html``: the table, then plots for each series.

A single self-contained file (inline SVG and CSS, no scripts, nothing fetched), so it
can be attached to a ticket or opened from a build artefact. Histograms get their
latency distribution and their p50/p90/p99 and count over time; counters their
increase over time; gauges their value over time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape

from ._format import format_value
from ._histogram import HistogramData
from ._model import MIN_SCALE, Point, series_key
from ._report import Report
from .exporters._table import HEADER, format_tags, row

MAX_BARS = 40  # buckets shown in a distribution; finer histograms are downscaled
WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 10, 40
COLOURS = {"p50": "#1f77b4", "p90": "#ff7f0e", "p99": "#d62728", "value": "#2ca02c"}

_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 2px 10px; text-align: right; white-space: nowrap; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
tbody tr:nth-child(odd) { background: #f3f3f3; }
section { margin: 2.5em 0; }
h2 { font-size: 1.1em; margin-bottom: 0.2em; }
h2 small { font-weight: normal; color: #555; }
figure { margin: 0.5em 0; }
figcaption { font-size: 0.9em; color: #555; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
.note { color: #a33; }
"""


def render(report: Report) -> str:
    """The page for *report*."""
    series = report.series()
    starts, timeline = report.timeline()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(report.title())}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(report.title())}</h1>",
    ]
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in report.skipped)
    parts.append(_table(series))
    for number, point in enumerate(series, 1):
        parts.append(_section(number, point, starts, timeline.get(series_key(point), [])))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _table(series: Sequence[Point]) -> str:
    rows = []
    for number, point in enumerate(series, 1):
        name, tags, *cells = row(point)
        rows.append(
            f'<tr><td><a href="#s{number}">{escape(name)}</a></td><td>{escape(tags)}</td>'
            + "".join(f"<td>{escape(cell)}</td>" for cell in cells)
            + "</tr>"
        )
    header = "".join(f"<th>{escape(h)}</th>" for h in HEADER)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(number: int, point: Point, starts: list[float], slots: list[Point | None]) -> str:
    title = f'<h2 id="s{number}">{escape(point.name)} <small>{escape(format_tags(point))}</small></h2>'
    figures = []
    unit = point.unit
    times = _time_labels(starts)
    if point.histogram is not None:
        figures.append(_distribution(point.histogram, unit))
        lines = {
            name: [None if p is None or p.histogram is None else p.histogram.quantile(q) for p in slots]
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }
        figures.append(_figure(_line_chart(lines, times, unit), "p50, p90 and p99 over time"))
        counts = [0.0 if p is None or p.histogram is None else float(p.histogram.count) for p in slots]
        figures.append(_figure(_bar_chart(counts, times, ""), "count per time slot"))
    elif point.kind == "counter":
        values = [0.0 if p is None or p.value is None else float(p.value) for p in slots]
        figures.append(_figure(_bar_chart(values, times, unit), "increase per time slot"))
    else:
        gauge = {"value": [None if p is None or p.value is None else float(p.value) for p in slots]}
        figures.append(_figure(_line_chart(gauge, times, unit), "last value per time slot"))
    return f"<section>{title}{''.join(figures)}</section>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _distribution(histogram: HistogramData, unit: str) -> str:
    """Bars per bucket on a logarithmic axis, downscaled to at most MAX_BARS buckets."""
    h = histogram
    while h.positive and max(h.positive) - min(h.positive) + 1 > MAX_BARS and h.scale > MIN_SCALE:
        h = h.downscale(h.scale - 1)
    if not h.positive:
        return _figure("<p>no values above zero</p>", "distribution")
    low, high = min(h.positive), max(h.positive)
    base = h.base
    counts = [float(h.positive.get(i, 0)) for i in range(low, high + 1)]
    labels = [format_value(base**i, unit) for i in range(low, high + 1)]
    left_out = h.zero_count + sum(h.negative.values())
    caption = "distribution: values per bucket (logarithmic buckets, labelled by lower bound)"
    if left_out:
        caption += f"; {left_out} values at or below zero not shown"
    return _figure(_bar_chart(counts, labels, ""), caption)


class _Scale:
    """Maps values to y pixels over a range that always includes zero (values may be negative)."""

    def __init__(self, values: list[float]) -> None:
        self.low = min(0.0, *values)
        self.high = max(0.0, *values)
        if self.high == self.low:
            self.high = self.low + 1.0
        self.height = HEIGHT - TOP - BOTTOM

    def y(self, value: float) -> float:
        return TOP + self.height * (self.high - value) / (self.high - self.low)


def _bar_chart(values: list[float], labels: list[str], unit: str) -> str:
    if not values:
        return "<p>no data</p>"
    scale = _Scale(values)
    step = (WIDTH - LEFT - RIGHT) / len(values)
    zero = scale.y(0.0)
    bars = []
    for i, value in enumerate(values):
        y = scale.y(value)
        x = LEFT + i * step
        bars.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{min(y, zero):.1f}" width="{step * 0.8:.1f}" '
            f'height="{abs(zero - y):.1f}" fill="#1f77b4">'
            f"<title>{escape(labels[i])}: {escape(format_value(value, unit))}</title></rect>"
        )
    return _svg(bars, labels, scale, unit)


def _line_chart(lines: dict[str, list[float | None]], labels: list[str], unit: str) -> str:
    finite = [v for values in lines.values() for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "<p>no data</p>"
    scale = _Scale(finite)
    step = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    shapes = []
    legend_x = LEFT + 8
    for name, values in lines.items():
        colour = COLOURS.get(name, "#444")
        run: list[str] = []
        runs = []
        for i, value in enumerate(values):
            if value is None or not math.isfinite(value):
                runs.append(run)
                run = []
                continue
            run.append(f"{LEFT + (i + 0.5) * step:.1f},{scale.y(value):.1f}")
        runs.append(run)
        for points in runs:
            if len(points) == 1:
                x, y = points[0].split(",")
                shapes.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
            elif points:
                joined = " ".join(points)
                shapes.append(f'<polyline points="{joined}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        shapes.append(f'<text x="{legend_x}" y="{TOP + 12}" style="fill:{colour}">{escape(name)}</text>')
        legend_x += 40
    return _svg(shapes, labels, scale, unit)


def _svg(shapes: list[str], labels: list[str], scale: _Scale, unit: str) -> str:
    """Axes (the horizontal one at zero), the y range's ends, and about eight x labels."""
    zero = scale.y(0.0)
    bottom = TOP + scale.height
    axes = [
        f'<line x1="{LEFT}" y1="{zero:.1f}" x2="{WIDTH - RIGHT}" y2="{zero:.1f}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#888"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 8}" text-anchor="end">{escape(format_value(scale.high, unit))}</text>',
        f'<text x="{LEFT - 6}" y="{bottom}" text-anchor="end">{escape(format_value(scale.low, unit))}</text>',
    ]
    step = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    every = max(1, math.ceil(len(labels) / 8))
    for i in range(0, len(labels), every):
        x = LEFT + (i + 0.5) * step
        axes.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(labels[i])}</text>')
    body = "".join(axes + shapes)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img">{body}</svg>'


def _time_labels(starts: list[float]) -> list[str]:
    """Seconds since the first slot for short spans, UTC wall-clock time for longer ones."""
    if not starts:
        return []
    first = starts[0]
    if starts[-1] - first < 120:
        return [f"+{t - first:.1f}s" for t in starts]
    return [time.strftime("%H:%M:%S", time.gmtime(t)) for t in starts]

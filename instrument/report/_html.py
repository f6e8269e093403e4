"""The page of ``instrument report --html``: a summary, the table, then plots for each series.

A single self-contained file (inline SVG and CSS, no scripts, nothing fetched), so it
can be attached to a ticket or opened from a build artefact. The page uses the width
of the window: the summary's lists and each series' plots sit side by side when they
fit and wrap when they do not; tag sets wrap inside their cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from itertools import groupby
from typing import Any

from .._format import format_value, significant
from .._model import QUANTILES, Kind, Point, series_key
from ..exporters._table import HEADER, is_self_metric, losses, quantile, row
from . import _glance, _svg
from ._distribution import bins
from ._read import Report, duration
from ._timeline import Slot

STYLE = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --band: #f9fafb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0;
       padding: 20px clamp(12px, 2.5vw, 36px); }
h1 { font-size: 1.5em; margin: 0 0 4px; }
h2 { font-size: 1.15em; margin: 28px 0 8px; }
h3 { font-size: 1em; margin: 0 0 6px; font-weight: 600; display: flex; flex-wrap: wrap; gap: 6px 12px;
     align-items: baseline; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.meta { color: var(--muted); margin: 0; }
.note { color: #b91c1c; font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 380px), 1fr)); gap: 16px;
         align-items: start; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; min-width: 0; }
.card table { font-size: 13px; }
.card td, .card th { padding: 3px 5px; }
.card .metric-name { font-size: 11.5px; color: var(--muted); white-space: nowrap; }
.card h2 { margin: 0 0 6px; font-size: 1.05em; }
.card p { color: var(--muted); margin: 4px 0; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 4px 8px; text-align: right; vertical-align: top; white-space: nowrap;
         font-variant-numeric: tabular-nums; }
th { color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); }
th.text, td.text { text-align: left; }
td.tags, td.wide { white-space: normal; width: 100%; }
td.wide { overflow-wrap: anywhere; }
tbody tr:nth-child(odd) { background: var(--band); }
.tag { display: inline-block; margin: 0 6px 2px 0; padding: 0 6px; border-radius: 4px; background: #eef2ff;
       font-size: 0.92em; overflow-wrap: anywhere; white-space: normal; }
.tag b { font-weight: 600; }
.bad { color: #b91c1c; font-weight: 600; }
section.metric { margin-top: 34px; }
article { border-top: 1px solid var(--line); padding: 12px 0 6px; }
.stats { color: var(--muted); font-weight: normal; font-variant-numeric: tabular-nums; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 360px), 1fr)); gap: 8px 20px; }
figure { margin: 0; min-width: 0; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.88em; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", sans-serif; fill: #4b5563; }
svg text.note { fill: #6b7280; font-style: italic; }
"""


def render(report: Report) -> str:
    """The page for *report*."""
    series = report.series()
    starts, timeline = report.timeline()
    width = report.slot_width()
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.title())}</title><style>{STYLE}</style></head><body>",
        _header(report, width),
        _summary(series),
        '<h2 id="series">Every series</h2>',
        _table(series),
    ]
    for name, group in groupby(enumerate(series, 1), key=lambda numbered: numbered[1].name):
        members = list(group)
        unit, kind = members[0][1].unit, members[0][1].kind
        described = f"{kind}, {unit}" if unit else kind
        parts.append(f'<section class="metric"><h2>{escape(name)} <span class="stats">{escape(described)}</span></h2>')
        for number, point in members:
            parts.append(_article(number, point, starts, width, timeline.get(series_key(point), [])))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _header(report: Report, width: float) -> str:
    title = report.title().removeprefix("instrument report: ")
    lines = [f"<header><h1>instrument report</h1><p class=\"meta\">{escape(title)}"]
    if width:
        lines.append(f" · plotted in time slots of {escape(duration(width))}")
    lines.append("</p>")
    if not report.self_metrics:
        note = losses(p for p in report.all_series() if is_self_metric(p))
        if note:
            lines.append(f'<p class="note">{escape(note)}</p>')
    lines += [f'<p class="note">{escape(skipped)}</p>' for skipped in report.skipped]
    lines.append("</header>")
    return "".join(lines)


# A summary card's columns after the first: a header and how a line fills it (HTML).
Columns = Sequence[tuple[str, Callable[[_glance.Line], str]]]
COUNT: Columns = (("count", lambda line: str(line.histogram.count)),)
ROUTE_COLUMNS: Columns = (
    *COUNT,
    ("p50", lambda line: _value(quantile(line.histogram, 0.5), line.unit)),
    ("p99", lambda line: _value(quantile(line.histogram, 0.99), line.unit)),
)
ERROR_COLUMNS: Columns = (
    ("calls", lambda line: str(line.histogram.count)),
    ("errors", lambda line: str(line.errors)),
    ("rate", lambda line: f'<span class="bad">{escape(significant(100 * line.error_rate))} %</span>'),
)
TAIL_COLUMNS: Columns = (
    *COUNT,
    ("p99", lambda line: _value(quantile(line.histogram, 0.99), line.unit)),
    ("max", lambda line: _value(line.histogram.max, line.unit)),
)


def _summary(series: Sequence[Point]) -> str:
    cards = []
    routes = _glance.slowest_routes(series)
    if routes:
        explained = "HTTP server routes, every status together, by p50."
        cards.append(_card("Slowest routes", explained, routes, ROUTE_COLUMNS, metric_names=False))
    failing = _glance.error_rates(series)
    if failing:
        cards.append(_card("Error rates", "Calls recorded with an error, per operation.", failing, ERROR_COLUMNS))
    else:
        cards.append('<div class="card"><h2>Error rates</h2><p>No call was recorded with an error.</p></div>')
    tails = _glance.biggest_p99s(series)
    if tails:
        cards.append(_card("Biggest p99s", "Durations, per series, by their 99th percentile.", tails, TAIL_COLUMNS))
    return f'<section class="cards">{"".join(cards)}</section>'


def _card(
    title: str, explained: str, lines: Sequence[_glance.Line], columns: Columns, metric_names: bool = True
) -> str:
    """A list of the summary: each line named and linked to its series' plots, then its columns."""
    rows = []
    for line in lines:
        what = f'<a href="#s{line.anchor + 1}">{escape(_glance.describe(line.name, line.tags))}</a>'
        if metric_names:
            what += f'<br><span class="metric-name">{escape(line.name)}</span>'
        cells = "".join(f"<td>{fill(line)}</td>" for _, fill in columns)
        rows.append(f'<tr><td class="text wide">{what}</td>{cells}</tr>')
    head = '<th class="text"></th>' + "".join(f"<th>{escape(name)}</th>" for name, _ in columns)
    return (
        f'<div class="card"><h2>{escape(title)}</h2><p>{escape(explained)}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _value(value: float, unit: str) -> str:
    return escape(format_value(value, unit))


def _tags(tags: dict[str, Any]) -> str:
    return "".join(
        f'<span class="tag">{escape(str(k))}=<b>{escape(str(v))}</b></span>' for k, v in sorted(tags.items())
    )


def _table(series: Sequence[Point]) -> str:
    rows = []
    for number, point in enumerate(series, 1):
        name, _, *cells = row(point)
        rows.append(
            f'<tr><td class="text"><a href="#s{number}">{escape(name)}</a></td><td class="text tags">'
            f"{_tags(point.tags)}</td>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"
        )
    header = "".join(f'<th class="{"text" if i < 2 else ""}">{escape(h)}</th>' for i, h in enumerate(HEADER))
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _article(number: int, point: Point, starts: list[float], width: float, slots: list[Slot | None]) -> str:
    tags = _tags(point.tags) or '<span class="stats">no tags</span>'
    figures = []
    unit = point.unit
    slot_width = duration(width)
    if point.histogram is not None:
        h = point.histogram
        p50, p99 = format_value(quantile(h, 0.5), unit), format_value(quantile(h, 0.99), unit)
        stats = f"{h.count} values · p50 {p50} · p99 {p99} · max {format_value(h.max, unit)}"
        figures.append(_distribution(point))
        histograms = [None if slot is None else slot.histogram for slot in slots]
        lines = {
            name: [None if s is None or not s.count else quantile(s, q) for s in histograms] for name, q in QUANTILES
        }
        caption = f"{', '.join(lines)} over time, of the intervals in each {slot_width} slot"
        figures.append(_figure(_svg.lines_over_time(lines, starts, width, unit, f"{point.name} percentiles"), caption))
        rates = [0.0 if slot is None else slot.amount / width for slot in slots]
        figures.append(_figure(
            _svg.bars_over_time(rates, starts, width, "1", f"{point.name} rate"),
            f"values per second, over each {slot_width} slot",
        ))
    elif point.kind == Kind.COUNTER:
        stats = f"total {format_value(point.value, unit)}"
        rates = [0.0 if slot is None else slot.amount / width for slot in slots]
        figures.append(_figure(
            _svg.bars_over_time(rates, starts, width, unit, f"{point.name} rate"),
            f"increase per second, over each {slot_width} slot",
        ))
    else:
        stats = f"last {format_value(point.value, unit)}"
        gauge = {"value": [None if slot is None else slot.value for slot in slots]}
        figures.append(_figure(
            _svg.lines_over_time(gauge, starts, width, unit, f"{point.name} value"),
            f"last value in each {slot_width} slot",
        ))
    return (
        f'<article id="s{number}"><h3><span>{tags}</span><span class="stats">{escape(stats)}</span></h3>'
        f'<div class="plots">{"".join(figures)}</div></article>'
    )


def _distribution(point: Point) -> str:
    assert point.histogram is not None
    histogram, unit = point.histogram, point.unit
    found = bins(histogram, unit)
    label = f"{point.name} distribution"
    if found.categories:
        caption = "distribution: how many values of each"
        return _figure(_svg.category_bars(found.categories, label), caption)
    markers = [(name, quantile(histogram, q)) for name, q in QUANTILES]
    caption = "distribution: values per bucket, logarithmic axis"
    if found.left_out:
        caption += f"; {found.left_out} values at or below zero not shown"
    return _figure(_svg.histogram_bars(found.buckets, unit, markers, label), caption)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"

"""The plots of the HTML report, as inline SVG: axes with ticks and gridlines, legends
above the plotting area, a tooltip (``<title>``) on every bar and time slot.

Each plot has a fixed coordinate system (``viewBox``) and scales to the width the page
gives it, so three fit side by side on a wide screen and one per row on a narrow one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape

from .._format import display_scale, format_value, significant

WIDTH, HEIGHT = 480, 230
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 30, 36  # room for y labels, the legend, the x labels
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
COLOURS = ("#2563eb", "#ea8a0c", "#dc2626", "#7c3aed", "#0d9488")
BAR = "#3b82f6"
GRID = "#e5e7eb"
AXIS = "#6b7280"
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


class Linear:
    """Values to pixels along one axis, on a linear scale."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        if high <= low:
            high = low + 1.0
        self.low, self.high, self.start, self.end = low, high, start, end

    def __call__(self, value: float) -> float:
        return self.start + (self.end - self.start) * (value - self.low) / (self.high - self.low)


class Log:
    """Positive values to pixels along one axis, on a logarithmic scale."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        self.low, self.high = math.log10(low), math.log10(max(high, low * 1.0001))
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        position = (math.log10(max(value, 1e-300)) - self.low) / (self.high - self.low)
        return self.start + (self.end - self.start) * position


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2, 2.5 or 5 times a power of ten dividing *span* into about *count* parts."""
    raw = span / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)


def linear_ticks(low: float, high: float, unit: str, count: int = 4) -> tuple[float, float, list[tuple[float, str]]]:
    """An axis from *low* to *high* (zero included), widened to whole steps: its ends and its
    ticks with labels, all counted in the unit the largest value is shown in (0, 0.5 ms, 1 ms)."""
    low, high = min(0.0, low), max(0.0, high)
    if high == low:
        high = low + 1.0 if low == 0 else low + abs(low)
    size, suffix = display_scale(max(abs(low), abs(high)), unit)
    step = nice_step((high - low) / size, count)
    first, last = math.floor(low / size / step), math.ceil(high / size / step)
    ticks = []
    for n in range(first, last + 1):
        shown = n * step
        ticks.append((shown * size, "0" if n == 0 else significant(shown, 4) + suffix))
    return first * step * size, last * step * size, ticks


def log_ticks(low: float, high: float, unit: str, count: int = 7) -> list[tuple[float, str]]:
    """At most *count* ticks between *low* and *high* (> 0): 1, 2 and 5 times powers of ten,
    or powers of ten alone when those would be too many (every other one, and so on, if
    still too many); powers of two for bytes; evenly spaced values when the range is too
    narrow for three of those."""
    if unit.endswith("By"):
        values = [2.0**e for e in range(math.floor(math.log2(low)), math.ceil(math.log2(high)) + 1)]
    else:
        decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        values = [m * 10.0**d for d in decades for m in (1, 2, 5)]
        if len([v for v in values if low <= v * 1.000001 and v <= high * 1.000001]) > count:
            values = [10.0**d for d in decades]
    inside = [v for v in values if low <= v * 1.000001 and v <= high * 1.000001]
    inside = inside[:: max(1, math.ceil(len(inside) / count))]
    if len(inside) >= 3:
        return [(v, format_value(v, unit)) for v in inside]
    size, suffix = display_scale(high, unit)
    step = nice_step((high - low) / size, 3)
    first = math.ceil(low / size / step)
    shown = [n * step for n in range(first, math.floor(high / size / step) + 1)]
    return [(v * size, significant(v, 4) + suffix) for v in shown if v > 0]


def time_ticks(start: float, end: float, count: int = 7) -> list[tuple[float, str]]:
    """Ticks on round clock times (UTC) between *start* and *end*; offsets from *start* for a few seconds."""
    span = max(end - start, 1e-3)
    if span < 5:
        step = nice_step(span, count)
        return [(start + i * step, f"+{significant(i * step)}s") for i in range(int(span / step + 1e-9) + 1)]
    step = next((s for s in TIME_STEPS if span / s <= count), 86400 * math.ceil(span / count / 86400))
    shape = "%H:%M:%S" if step < 60 else ("%H:%M" if span < 86400 else "%m-%d %H:%M")
    first = math.ceil(start / step) * step
    return [(t, time.strftime(shape, time.gmtime(t))) for t in _range(first, end, step)]


def _range(first: float, last: float, step: float) -> list[float]:
    return [first + i * step for i in range(int((last - first) / step + 1e-9) + 1)]


def _frame(parts: list[str], label: str) -> str:
    body = "".join(parts)
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(label)}">{body}</svg>'
    )


def _y_axis(ticks: list[tuple[float, str]], y: Linear | Log) -> list[str]:
    """Gridlines and labels for *ticks*, and the axis line."""
    parts = []
    for value, text in ticks:
        at = y(value)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at:.1f}" y2="{at:.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{at + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + PLOT_HEIGHT}" stroke="{AXIS}"/>')
    return parts


def _x_axis(ticks: list[tuple[float, str]], x: Linear | Log, baseline: float) -> list[str]:
    """Tick marks and labels under the plot, and the axis line at *baseline*."""
    parts = [f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{baseline:.1f}" y2="{baseline:.1f}" stroke="{AXIS}"/>']
    bottom = TOP + PLOT_HEIGHT
    for value, text in ticks:
        at = x(value)
        half = 3.2 * len(text)  # about half the label's width at 11 px
        parts.append(f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="{AXIS}"/>')
        if at - half >= 0 and at + half <= WIDTH:  # a label that would be cut off is left out
            parts.append(f'<text x="{at:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(text)}</text>')
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    """Coloured keys in the margin above the plotting area, right-aligned: never over the data."""
    parts = []
    x = WIDTH - RIGHT
    for index in reversed(range(len(names))):
        name = names[index]
        x -= 8 * len(name) + 22
        colour = COLOURS[index % len(COLOURS)]
        parts.append(f'<rect x="{x}" y="{TOP - 19}" width="12" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="{TOP - 13}">{escape(name)}</text>')
    return parts


def _note(text: str) -> str:
    return f'<text x="{LEFT}" y="{TOP - 13}" class="note">{escape(text)}</text>'


def empty(label: str) -> str:
    return _frame([f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>'], label)


def lines_over_time(
    lines: dict[str, list[float | None]], starts: Sequence[float], width: float, unit: str, label: str
) -> str:
    """One line per entry of *lines* (a value or None per slot), on a log scale when values span
    more than two decades. A slot without a value interrupts the line; a lone value is a dot."""
    values = [v for series in lines.values() for v in series if v is not None and math.isfinite(v)]
    if not values or not starts:
        return empty(label)
    x = Linear(starts[0], starts[-1] + width, LEFT, WIDTH - RIGHT)
    low, high = min(values), max(values)
    y: Linear | Log
    parts: list[str] = []
    if low > 0 and high / low > 100:
        y = Log(low / 1.2, high * 1.2, TOP + PLOT_HEIGHT, TOP)
        ticks = log_ticks(low / 1.2, high * 1.2, unit, count=6)
        parts.append(_note("log scale"))
    else:
        bottom, top, ticks = linear_ticks(low, high, unit)
        y = Linear(bottom, top, TOP + PLOT_HEIGHT, TOP)
    parts += _y_axis(ticks, y)
    for index, series in reversed(list(enumerate(lines.values()))):  # the first line is drawn on top
        colour = COLOURS[index % len(COLOURS)]
        run: list[str] = []
        for slot, value in enumerate([*series, None]):
            if value is not None and math.isfinite(value):
                run.append(f"{x(starts[slot] + width / 2):.1f},{y(value):.1f}")
                continue
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.2" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.6" '
                    'stroke-linejoin="round"/>'
                )
            run = []
    parts += _x_axis(time_ticks(starts[0], starts[-1] + width), x, TOP + PLOT_HEIGHT)
    parts += _legend(list(lines))
    parts += _slot_tips(starts, width, x, lines, unit)
    return _frame(parts, label)


def _slot_tips(
    starts: Sequence[float], width: float, x: Linear, lines: dict[str, list[float | None]], unit: str
) -> list[str]:
    """An invisible column per slot whose tooltip lists the slot's values."""
    parts = []
    for slot, start in enumerate(starts):
        shown = [f"{name} {format_value(series[slot], unit)}" for name, series in lines.items()]
        tip = f"{_clock(start)}: " + ", ".join(shown)
        left, right = x(start), x(start + width)
        parts.append(
            f'<rect x="{left:.1f}" y="{TOP}" width="{right - left:.1f}" height="{PLOT_HEIGHT}" fill="transparent">'
            f"<title>{escape(tip)}</title></rect>"
        )
    return parts


def bars_over_time(values: Sequence[float], starts: Sequence[float], width: float, unit: str, label: str) -> str:
    """A bar per slot (counts, a counter's increase)."""
    if not starts:
        return empty(label)
    x = Linear(starts[0], starts[-1] + width, LEFT, WIDTH - RIGHT)
    bottom, top, ticks = linear_ticks(min(values), max(values), unit)
    y = Linear(bottom, top, TOP + PLOT_HEIGHT, TOP)
    parts = _y_axis(ticks, y)
    zero = y(0.0)
    for start, value in zip(starts, values, strict=True):
        left, right = x(start), x(start + width)
        gap = min(1.0, (right - left) * 0.15)
        at = y(value)
        parts.append(
            f'<rect x="{left + gap:.1f}" y="{min(at, zero):.1f}" width="{max(0.5, right - left - 2 * gap):.1f}" '
            f'height="{abs(zero - at):.1f}" fill="{BAR}"><title>{escape(_clock(start))}: '
            f"{escape(format_value(value, unit))}</title></rect>"
        )
    parts += _x_axis(time_ticks(starts[0], starts[-1] + width), x, zero)
    return _frame(parts, label)


def histogram_bars(
    bins: Sequence[tuple[float, float, int]], unit: str, markers: Sequence[tuple[str, float]], label: str
) -> str:
    """Bars over a logarithmic value axis, one per ``(lower, upper, count)`` bin (values > 0),
    with a dashed line at each marker (the percentiles), named in the legend."""
    if not bins:
        return empty(label)
    low, high = bins[0][0], bins[-1][1]
    x = Log(low, high, LEFT, WIDTH - RIGHT)
    bottom, top, ticks = linear_ticks(0, max(n for _, _, n in bins), "1")
    y = Linear(bottom, top, TOP + PLOT_HEIGHT, TOP)
    parts = _y_axis(ticks, y)
    zero = y(0.0)
    for lower, upper, n in bins:
        left, right = x(lower), x(upper)
        parts.append(
            f'<rect x="{left:.1f}" y="{y(n):.1f}" width="{max(1.0, right - left - 0.6):.1f}" '
            f'height="{zero - y(n):.1f}" fill="{BAR}"><title>{escape(format_value(lower, unit))} to '
            f"{escape(format_value(upper, unit))}: {n}</title></rect>"
        )
    for index, (name, value) in enumerate(markers):
        at = x(min(max(value, low), high))
        colour = COLOURS[index % len(COLOURS)]
        parts.append(
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{TOP}" y2="{zero:.1f}" stroke="{colour}" '
            f'stroke-dasharray="4 3" stroke-width="1.4"><title>{escape(name)} {escape(format_value(value, unit))}'
            "</title></line>"
        )
    parts += _x_axis(log_ticks(low, high, unit), x, zero)
    parts += _legend([name for name, _ in markers])
    return _frame(parts, label)


def category_bars(categories: Sequence[tuple[str, int]], label: str) -> str:
    """One bar per category, evenly spaced and labelled: a distribution of a few distinct values."""
    if not categories:
        return empty(label)
    step = PLOT_WIDTH / len(categories)
    bottom, top, ticks = linear_ticks(0, max(n for _, n in categories), "1")
    y = Linear(bottom, top, TOP + PLOT_HEIGHT, TOP)
    parts = _y_axis(ticks, y)
    zero = y(0.0)
    every = max(1, math.ceil(len(categories) / 10))
    for index, (name, n) in enumerate(categories):
        left = LEFT + index * step
        bar = min(step * 0.7, 48)
        centre = left + step / 2
        parts.append(
            f'<rect x="{centre - bar / 2:.1f}" y="{y(n):.1f}" width="{bar:.1f}" height="{zero - y(n):.1f}" '
            f'fill="{BAR}"><title>{escape(name)}: {n}</title></rect>'
        )
        if index % every == 0:
            below = TOP + PLOT_HEIGHT + 16
            parts.append(f'<text x="{centre:.1f}" y="{below}" text-anchor="middle">{escape(name)}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="{AXIS}"/>')
    return _frame(parts, label)


def _clock(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(timestamp))

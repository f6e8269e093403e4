"""What exporters receive: a `Batch` of `Point`s, one per series per interval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from ._histogram import HistogramData, merge_all

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))


class Kind(StrEnum):
    """What a `Point` holds. A `str` (``Kind.COUNTER == "counter"``), so that a point
    made with the plain string is the same, and jsonl lines, the HTTP exporter's JSON
    and Prometheus' TYPE lines read as they always have."""

    COUNTER = "counter"  # `value`: the increase over the interval
    GAUGE = "gauge"  # `value`: the last value set
    HISTOGRAM = "histogram"  # `histogram`: count, sum, min, max and buckets


class Point:
    """One series' aggregate over one interval.

    ``kind`` is a `Kind`: ``"counter"`` (``value`` is the increase over the interval),
    ``"gauge"`` (``value`` is the last value set) or ``"histogram"`` (``histogram``
    holds count, sum, min, max and buckets, in ``unit``; timers use seconds).
    """

    __slots__ = ("additive", "end_time", "histogram", "kind", "name", "start_time", "tags", "unit", "value")

    def __init__(
        self,
        name: str,
        kind: str,
        unit: str,
        tags: Mapping[str, Any],
        start_time: float,
        end_time: float,
        value: int | float | None = None,
        histogram: HistogramData | None = None,
        additive: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.unit = unit
        self.tags = dict(tags)
        self.start_time = start_time
        self.end_time = end_time
        self.value = value
        self.histogram = histogram
        self.additive = additive  # a gauge that is this process's share of a total

    def __repr__(self) -> str:
        shown = self.histogram if self.kind == Kind.HISTOGRAM else self.value
        return f"<Point {self.kind} {self.name} {self.tags!r} {shown!r}>"

    def as_dict(self, *, quantiles: bool = True) -> dict[str, Any]:
        """This point as a JSON object, which `point_from_dict` reads back: the jsonl
        exporter's lines (documented in docs/exporters.md), the HTTP exporter's points and
        the points a Prometheus worker forwards to the endpoint's process.

        ``additive`` is there, true, only for a gauge that is one process's share of a
        total. The quantiles (``p50`` .. ``p999``) are for readers of the file; derived
        from the buckets, they are left out when *quantiles* is false.
        """
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "unit": self.unit,
            "tags": self.tags,
            "start_time": self.start_time,
            "end_time": self.end_time,
        }
        histogram = self.histogram
        if histogram is None:
            data["value"] = self.value
            if self.additive:
                data["additive"] = True
            return data
        data["count"] = histogram.count
        data["sum"] = histogram.sum
        data["min"] = histogram.min
        data["max"] = histogram.max
        if quantiles:
            for key, q in QUANTILES:
                data[key] = histogram.quantile(q)
        data["buckets"] = histogram.as_dict()
        return data


# OpenTelemetry's range of exponential histogram scales is [-10, 20]; at -10 the base,
# 2**1024, is not a float.
MIN_SCALE, MAX_SCALE = -9, 20
LATEST_TIME = 253402300800.0  # 10000-01-01T00:00:00Z


def point_from_dict(data: Any, *, strict: bool = True) -> Point:
    """The `Point` a JSON object holds (the inverse of `Point.as_dict`).

    Raises ValueError naming the first field that is missing or of the wrong type.
    *strict* also holds the numbers to what any reader can compute with: values, sums,
    minimums and maximums finite and within float range, and bucket bounds too. That is
    for jsonl lines, from whatever wrote them; points one of our processes forwards to
    another are read with *strict* false, so that they arrive as the pipeline made them:
    a sum that overflowed to infinity, a value near the largest float.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    name = _field(data, "name", str)
    text = _field(data, "kind", str)
    try:
        kind = Kind(text)
    except ValueError:
        raise ValueError(f"'kind' must be one of {', '.join(Kind)}, got {text!r}") from None
    unit = _field(data, "unit", str)
    tags = _field(data, "tags", dict)
    for key, value in tags.items():
        if not isinstance(value, (str, int, float)):
            raise ValueError(f"tag {key!r} must be a string, number or boolean, got {value!r}")
    start_time = _time_field(data, "start_time")
    end_time = _time_field(data, "end_time")
    if kind != Kind.HISTOGRAM:
        additive = data.get("additive", False)
        if not isinstance(additive, bool):
            raise ValueError(f"'additive' must be a JSON boolean, got {additive!r}")
        value = _number_field(data, "value", strict)
        return Point(name, kind, unit, tags, start_time, end_time, value=value, additive=additive)
    buckets = _field(data, "buckets", dict)
    scale = _field(buckets, "scale", int, "buckets.scale")
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"'buckets.scale' must be within [{MIN_SCALE}, {MAX_SCALE}], got {scale!r}")
    histogram = HistogramData(
        count=_count_field(data, "count"),
        sum=_number_field(data, "sum", strict),
        min=_number_field(data, "min", strict),
        max=_number_field(data, "max", strict),
        scale=scale,
        zero_count=_count_field(buckets, "zero_count", "buckets.zero_count"),
        positive=_side(buckets, "positive", scale, strict),
        negative=_side(buckets, "negative", scale, strict),
    )
    return Point(name, kind, unit, tags, start_time, end_time, histogram=histogram)


def _field(data: dict[str, Any], key: str, kind: type, label: str | None = None) -> Any:
    """``data[key]``, checked to be a *kind*."""
    if key not in data:
        raise ValueError(f"missing {label or key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{label or key!r} must be a JSON {_JSON_TYPES[kind]}, got {value!r}")
    return value


def _number_field(data: dict[str, Any], key: str, strict: bool = True) -> int | float:
    if key not in data:
        raise ValueError(f"missing {key!r}")
    value = data[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{key!r} must be a JSON number, got {value!r}")
    if not strict:
        return value
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise ValueError(f"{key!r} must be a finite number, got {value!r}")
    return value


def _time_field(data: dict[str, Any], key: str) -> float:
    value = _number_field(data, key)
    if not 0 <= value < LATEST_TIME:
        raise ValueError(f"{key!r} must be Unix seconds (0 to year 9999), got {value!r}")
    return float(value)


def _count_field(data: dict[str, Any], key: str, label: str | None = None) -> int:
    value: int = _field(data, key, int, label)
    if value < 0:
        raise ValueError(f"{label or key!r} must not be negative, got {value!r}")
    return value


def _side(buckets: dict[str, Any], side: str, scale: int, strict: bool = True) -> dict[int, int]:
    dense = _field(buckets, side, dict, f"buckets.{side}")
    offset = _field(dense, "offset", int, f"buckets.{side}.offset")
    counts = _field(dense, "counts", list, f"buckets.{side}.counts")
    # Bucket bounds base**index and base**(index + 1) must be floats: below 2**1024.
    limit = 1022 * 2**scale if scale >= 0 else (1023 >> -scale) - 1
    if strict and counts and not (-limit <= offset and offset + len(counts) - 1 <= limit):
        raise ValueError(f"'buckets.{side}' reaches beyond float range at scale {scale} (offset {offset})")
    sparse = {}
    for i, n in enumerate(counts):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"'buckets.{side}.counts' must hold counts (integers >= 0), got {n!r}")
        if n:
            sparse[offset + i] = n
    return sparse


_JSON_TYPES = {str: "string", dict: "object", int: "integer", list: "array"}


class Batch:
    """Everything aggregated over one interval (or up to a `flush()`), for one process."""

    __slots__ = ("end_time", "points", "records", "seq", "start_time")

    def __init__(self, seq: int, start_time: float, end_time: float, points: list[Point], records: int) -> None:
        self.seq = seq
        self.start_time = start_time
        self.end_time = end_time
        self.points = points
        self.records = records  # raw records aggregated into this batch

    def __repr__(self) -> str:
        return f"<Batch #{self.seq} {len(self.points)} points, {self.records} records>"

    def __len__(self) -> int:
        return len(self.points)


def series_key(point: Point) -> tuple[Any, ...]:
    """What identifies a point's series: name, kind, unit and tags (in any order)."""
    return (point.name, point.kind, point.unit, tuple(sorted(point.tags.items(), key=lambda kv: kv[0])))


def copy(point: Point) -> Point:
    """A point of its own, so folding into it never changes the original."""
    return Point(
        point.name, point.kind, point.unit, point.tags, point.start_time, point.end_time,
        value=point.value, histogram=point.histogram, additive=point.additive,
    )


def fold(seen: Point, point: Point, *, keep_start: bool = False) -> None:
    """Add *point* into *seen* (same series): counters add up, gauges keep the later
    value, histograms merge; the span covers both (from *seen*'s start if *keep_start*:
    a cumulative series' start, Prometheus' ``_created``, never moves)."""
    if point.kind == Kind.COUNTER:
        seen.value = (seen.value or 0) + (point.value or 0)
    elif point.kind == Kind.GAUGE:
        if point.end_time >= seen.end_time:
            seen.value = point.value
    elif point.histogram is not None:
        seen.histogram = point.histogram if seen.histogram is None else seen.histogram.merge(point.histogram)
    _widen(seen, point, keep_start)


def _widen(seen: Point, point: Point, keep_start: bool = False) -> None:
    if not keep_start:
        seen.start_time = min(seen.start_time, point.start_time)
    seen.end_time = max(seen.end_time, point.end_time)


def merge(points: list[Point]) -> list[Point]:
    """Combine points of the same series over several intervals or processes.

    Counters add up, gauges keep the latest value, histograms merge their buckets.
    The result spans the earliest start to the latest end, in first-seen order.
    """
    merged: dict[tuple[Any, ...], Point] = {}
    histograms: dict[tuple[Any, ...], list[HistogramData]] = {}
    for point in points:
        key = series_key(point)
        seen = merged.get(key)
        if seen is None:
            merged[key] = copy(point)
            if point.histogram is not None:
                histograms[key] = [point.histogram]
        elif point.histogram is not None:  # merged all at once below: pairwise is quadratic
            histograms.setdefault(key, []).append(point.histogram)
            _widen(seen, point)
        else:
            fold(seen, point)
    for key, found in histograms.items():
        merged[key].histogram = merge_all(found)
    return list(merged.values())

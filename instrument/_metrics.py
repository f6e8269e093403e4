"""Metric declarations: names, kinds, units and series (a metric plus one tag set).

A `Series` is resolved once per declaration (decorator, `timer()`, first use of a
`count()` call site) and from then on the hot path only touches `series.tls`.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _log
from ._config import settings
from ._model import Kind
from ._names import Tags, check_name, check_tags

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"  # values given by record(), in the metric's unit
TIMER = "timer"  # durations in integer nanoseconds, exported in seconds

# What each internal kind is called in exported data.
EXPORTED_KIND = {COUNTER: Kind.COUNTER, GAUGE: Kind.GAUGE, HISTOGRAM: Kind.HISTOGRAM, TIMER: Kind.HISTOGRAM}
_DESCRIBED = {
    COUNTER: "a counter (count()/@counted)",
    GAUGE: "a gauge (gauge())",
    HISTOGRAM: "a distribution (record())",
    TIMER: "a timer (@timed/timer())",
}

UNSET: Any = object()  # a gauge's value before its first gauge() call
OVERFLOW_TAGS: Tags = (("otel.metric.overflow", True),)

# Call-site caches stop growing here; past it, lookups take the validating slow path.
_CACHE_LIMIT = 50_000


class Series:
    """One metric with one tag set: the unit of aggregation and export."""

    __slots__ = ("__weakref__", "changed", "metric", "tags", "tls", "value")

    def __init__(self, metric: Metric, tags: Tags) -> None:
        self.metric = metric
        self.tags = tags
        # Each thread that records into this series keeps its own list here (`tls.buf`).
        self.tls = threading.local()
        # Gauges only: the last value set, and whether it was set since the last batch.
        self.value = UNSET
        self.changed = False

    def __repr__(self) -> str:
        return f"<Series {self.metric.name} {dict(self.tags)!r}>"


class Metric:
    """A declared metric: its kind, its unit and its series, bounded in number."""

    __slots__ = ("_errors", "additive", "kind", "name", "overflow", "series", "unit")

    def __init__(self, name: str, kind: str, unit: str) -> None:
        self.name = name
        self.kind = kind
        self.unit = unit
        # A gauge whose value is this process's share of a total (requests in progress):
        # an endpoint serving several processes sums the shares of the live ones.
        self.additive = False
        self.series: dict[Tags, Series] = {}
        self.overflow: Series | None = None
        self._errors: dict[tuple[Tags, type], Series] = {}

    def series_for(self, tags: Tags) -> Series:
        """The series for canonical *tags*, or the overflow series past the cardinality limit."""
        found = self.series.get(tags)
        if found is not None:
            return found
        # Two threads may both pass this check at the limit and add one series each:
        # the limit can be exceeded by the number of threads racing, never without bound.
        if len(self.series) >= settings.current.cardinality_limit:
            return self._overflow_series()
        return self.series.setdefault(tags, Series(self, tags))

    def error_series(self, tags: Tags, exc_type: type) -> Series:
        """The series for *tags* plus ``error=<exception class>`` (cached per class)."""
        key = (tags, exc_type)
        found = self._errors.get(key)
        if found is None:
            with_error = tuple(sorted((*tags, ("error", error_name(exc_type)))))
            found = self._errors.setdefault(key, self.series_for(with_error))
        return found

    def _overflow_series(self) -> Series:
        if self.overflow is None:
            _log.warn_once(
                ("cardinality", self.name),
                "metric %r reached its cardinality limit of %d tag sets; further tag "
                "sets are aggregated into one series tagged otel.metric.overflow=true "
                "(raise INSTRUMENT_CARDINALITY_LIMIT or use fewer distinct tag values)",
                self.name,
                settings.current.cardinality_limit,
            )
            self.overflow = Series(self, OVERFLOW_TAGS)
        return self.overflow

    def all_series(self) -> list[Series]:
        found = list(self.series.values())
        if self.overflow is not None:
            found.append(self.overflow)
        return found


_metrics: dict[str, Metric] = {}


def error_name(exc_type: type) -> str:
    """The `error` tag value for an exception class: qualified unless it is a builtin."""
    module = getattr(exc_type, "__module__", None)
    qualname = getattr(exc_type, "__qualname__", exc_type.__name__)
    if module in (None, "builtins"):
        return str(qualname)
    return f"{module}.{qualname}"


def declare(name: object, kind: str, unit: str | None = None) -> Metric:
    """Get or create the metric *name*; a second declaration must agree on kind and unit."""
    metric = _metrics.get(name) if isinstance(name, str) else None
    if metric is None:
        checked = check_name(name)
        if unit is not None and not isinstance(unit, str):
            raise TypeError(f"unit of metric {checked!r} must be a str, got {unit!r}")
        metric = _metrics.setdefault(checked, Metric(checked, kind, unit or ""))
    if metric.kind != kind:
        raise ValueError(
            f"metric {metric.name!r} is already declared as {_DESCRIBED[metric.kind]}; "
            f"it cannot also be {_DESCRIBED[kind]} - use another name"
        )
    if unit is not None and unit != metric.unit:
        raise ValueError(
            f"metric {metric.name!r} is already declared with unit {metric.unit!r}, "
            f"not {unit!r}"
        )
    return metric


def declare_series(name: object, kind: str, tags: object, unit: str | None = None) -> Series:
    """Validate and resolve a (metric, tag set) at declaration time."""
    metric = declare(name, kind, unit)
    return metric.series_for(check_tags(tags, metric.name))


def resolve_call_site(
    cache: dict[Any, Series], kind: str, name: object, tags: object, unit: str | None
) -> Series:
    """Slow path of count()/record()/gauge()/timer(): validate once, then cache."""
    series = declare_series(name, kind, tags, "s" if kind == TIMER else unit)
    if len(cache) < _CACHE_LIMIT:
        # The key the hot path builds; `tags` is a Mapping by now. A call that names
        # its unit has its own key, so a unit conflict is caught on every call site.
        key = name if tags is None else (name, *tags.items())  # type: ignore[attr-defined]
        cache[key if unit is None else (key, unit)] = series
    return series


def all_metrics() -> list[Metric]:
    return list(_metrics.values())


def reset_gauges() -> None:
    """Forget every gauge's value (a forked child must not report its parent's)."""
    for metric in all_metrics():
        if metric.kind == GAUGE:
            for series in metric.all_series():
                series.value = UNSET
                series.changed = False

"""Metrics whose tags are only known per call (HTTP status, SQL operation, ...).

Integrations build a tuple of tag values in a fixed order; the tuple is validated
and resolved to a series the first time it is seen and cached after that, so a call
costs one dict lookup and one append. Past the cache limit (a flood of distinct
values), lookups take the validating path; the metric's cardinality limit still
caps the number of series.
"""

from __future__ import annotations

from typing import Any

from .. import _record
from .._metrics import Metric, Series, declare
from .._names import check_tags
from ._failures import failed

_CACHE_LIMIT = 10_000
_NO_RESERVED: frozenset[str] = frozenset()


class Tagged:
    """One metric recorded with per-call tag values for a fixed list of keys."""

    def __init__(
        self, name: str, kind: str, unit: str, keys: tuple[str, ...], *, integration: str | tuple[str, ...] = ()
    ) -> None:
        """*integration*: the identifier(s) of the integrations recording it, named when recording fails."""
        self.name = name
        self.kind = kind
        self.unit = unit
        self.keys = keys
        self.integration = integration
        self._metric: Metric | None = None
        self._series: dict[tuple[Any, ...], Series] = {}

    def _resolve(self, values: tuple[Any, ...]) -> Series:
        if self._metric is None:
            self._metric = declare(self.name, self.kind, self.unit)
        tags = {key: value for key, value in zip(self.keys, values, strict=True) if value is not None}
        series = self._metric.series_for(check_tags(tags, self.name, reserved=_NO_RESERVED))
        if len(self._series) < _CACHE_LIMIT:
            self._series[values] = series
        return series

    def record(self, values: tuple[Any, ...], value: object) -> None:
        """Record *value* under the tags *values* (``None`` leaves a tag out). Never raises."""
        try:
            series = self._series.get(values)
            if series is None:
                series = self._resolve(values)
            _record.append(series, value)
        except Exception:  # instrumentation never breaks the instrumented call
            failed(self.integration, f"record {self.name}", "those measurements are dropped")

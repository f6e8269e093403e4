"""Points an exporter cannot encode: each is dropped alone, counted and logged once.

The API refuses what no exporter could send (non-finite values, tags that are not
text or 64-bit numbers), so what is left is rare: a sum that overflowed float range,
a StatsD line longer than a datagram. One such point never costs the rest of its
batch, or (for exporters that re-send cumulative totals) every later batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .. import _log, _record
from .._aggregation import SELF_DROPPED
from .._metrics import COUNTER, declare_series
from .._model import Point

REASON = "unexportable"


def drop(exporter: str, point: Point, why: str) -> None:
    """Count *point* in ``instrument.records.dropped{reason=unexportable, exporter=...}``
    (one per point) and log the first of each metric and exporter."""
    series = declare_series(SELF_DROPPED, COUNTER, {"reason": REASON, "exporter": exporter})
    _record.append(series, 1)
    _log.warn_once(
        (REASON, exporter, point.name),
        "instrument: exporter %r cannot send a point of %r (%s); it is dropped alone and counted in "
        "instrument.records.dropped{reason=unexportable}",
        exporter,
        point.name,
        why,
    )


def finite(point: Point) -> bool:
    """Whether every number of *point* is finite (JSON and StatsD hold no others)."""
    histogram = point.histogram
    if histogram is not None:
        return all(_finite(n) for n in (histogram.sum, histogram.min, histogram.max))
    return point.value is None or _finite(point.value)


def _finite(number: Any) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int beyond float range: JSON holds it, no float does
        return True


def json_lines(exporter: str, points: list[Point], resource: Mapping[str, str] | None = None) -> list[str]:
    """The JSON text of each point (`Point.as_dict`, with a ``resource`` field when
    *resource* has attributes), dropping those JSON cannot hold."""
    lines = []
    extra = {"resource": dict(resource)} if resource else {}
    for point in points:
        try:
            lines.append(json.dumps({**point.as_dict(), **extra}, separators=(",", ":"), allow_nan=False))
        except ValueError:  # a sum that overflowed to infinity: JSON has no such number
            drop(exporter, point, "a number beyond float range")
    return lines

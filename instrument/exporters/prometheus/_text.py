"""The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0, from cumulative points.

Pure functions from cumulative `Point`s to the text a scraper reads (`render`); which
of the two a scraper gets is `_negotiation`'s business, serving it `_endpoint`'s.

Names and labels are `_naming`'s.

Histogram buckets: every histogram series of a metric has the same fixed ``le``
boundaries, `instrument._buckets.classic_bounds` (by default powers of sqrt(2) chosen
by unit: 2**-14 s to 2**6 s for seconds, 64 B to 512 MiB for bytes, ...; or the
``classic_buckets`` configured for the metric or its unit) plus ``+Inf``. The default
boundaries are bucket boundaries of the exponential histograms, so each cumulative
count is exact with respect to the recorded buckets; values below the first boundary
(zero and negative values too) count in every bucket, values above the last only in
``+Inf``. ``_count`` and ``_sum`` are exact (a ``_sum`` that
overflowed shows as ``+Inf``). OpenMetrics forbids a ``_sum`` once negative values
were recorded, so it is left out there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

from ..._buckets import classic_bounds, cumulative_counts
from ..._model import Kind, Point
from ._naming import distinct, families

__all__ = ["OPENMETRICS_CONTENT_TYPE", "TEXT_CONTENT_TYPE", "render"]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    """``a="x",b="y"``."""
    return ",".join(f'{label}="{_escape_label_value(value)}"' for label, value in pairs)


def _escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# --- numbers ---------------------------------------------------------------------


def _number(value: int | float | None) -> str:
    if value is None:
        return "0"
    if isinstance(value, int):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@lru_cache(maxsize=1024)
def _le(bound: float) -> str:
    """*bound* written as Go's shortest %g does (exponent notation from 1e6), like
    Prometheus' own clients write ``le``, but keeping Python's ``.0`` as prometheus_client does."""
    text = repr(float(bound))
    whole, _, fraction = text.partition(".")
    if "e" in text or len(whole) <= 6:
        return text
    digits = (whole + fraction).rstrip("0")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e+{len(whole) - 1:02d}"


# --- exposition ---------------------------------------------------------------------


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def render(points: list[Point], openmetrics: bool = False,
           classic: Mapping[str, tuple[float, ...]] | None = None) -> str:
    """Cumulative *points* in the text format 0.0.4, or in OpenMetrics 1.0; *classic*: the
    configured ``classic_buckets``."""
    out: list[str] = []
    for names, kind, series in families(points):
        first = series[0]
        family = names.om_family if openmetrics else names.family
        about = f"{first.name} ({first.unit})" if first.unit else first.name
        out.append(f"# HELP {family} {_escape_help(about, openmetrics)}\n")
        out.append(f"# TYPE {family} {kind}\n")
        if openmetrics and names.unit and (family == names.unit or family.endswith("_" + names.unit)):
            out.append(f"# UNIT {family} {names.unit}\n")
        for pairs, point in distinct(series, kind == Kind.HISTOGRAM):
            labels = _labels(pairs)
            if kind == Kind.HISTOGRAM and point.histogram is not None:
                _histogram_lines(out, names.family, labels, point, openmetrics, classic or {})
                continue
            sample = names.om_family + "_total" if kind == Kind.COUNTER else names.family
            out.append(_sample(sample, labels, _number(point.value)))
            if openmetrics and kind == Kind.COUNTER:
                out.append(_sample(names.om_family + "_created", labels, _number(point.start_time)))
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out)


def _sample(name: str, labels: str, value: str) -> str:
    return f"{name}{{{labels}}} {value}\n" if labels else f"{name} {value}\n"


def _histogram_lines(out: list[str], family: str, labels: str, point: Point, openmetrics: bool,
                     classic: Mapping[str, tuple[float, ...]]) -> None:
    histogram = point.histogram
    assert histogram is not None
    bounds = classic_bounds(point.name, point.unit, classic)
    prefix = labels + "," if labels else ""
    for bound, count in zip(bounds, cumulative_counts(histogram, bounds), strict=True):
        out.append(f'{family}_bucket{{{prefix}le="{_le(bound)}"}} {count}\n')
    out.append(f'{family}_bucket{{{prefix}le="+Inf"}} {histogram.count}\n')
    out.append(_sample(family + "_count", labels, str(histogram.count)))
    if not (openmetrics and (histogram.negative or histogram.min < 0)):
        out.append(_sample(family + "_sum", labels, _number(histogram.sum)))
    if openmetrics:
        out.append(_sample(family + "_created", labels, _number(point.start_time)))

"""The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0, from cumulative points.

Pure functions from cumulative `Point`s to the text a scraper reads (`render`); which
of the two a scraper gets is `_negotiation`'s business, serving it `_endpoint`'s.

Names follow OpenTelemetry's Prometheus compatibility rules: characters other than
``[a-zA-Z0-9_:]`` become ``_`` and runs of ``_`` collapse; the unit becomes a word
suffix (``s`` -> ``_seconds``, ``By`` -> ``_bytes``, ``{request}`` -> nothing, ``1``
-> ``_ratio`` for gauges) unless the name already ends with it; counters end in
``_total``. Label names are sanitised the same way (without ``:``); tags whose names
collide are joined with ``;`` in the order of their original keys, and series whose
tags give the same labels are served as one; a histogram tag called ``le`` becomes
``exported_le``. Of two metrics whose Prometheus names clash, the first by original
name is served and the other is left out, with a warning.

Histogram buckets: every histogram series has the same fixed ``le`` boundaries,
powers of two chosen by unit (`instrument._buckets.BOUNDARY_EXPONENTS`: 2**-17 s to
2**6 s for seconds, 64 B to 512 MiB for bytes, ...) plus ``+Inf``. A power of two is
a bucket boundary of the exponential histograms at every scale >= 0, so each
cumulative count is exact with respect to the recorded buckets; values below the
first boundary (zero and negative values too) count in every bucket, values above
the last only in ``+Inf``. ``_count`` and ``_sum`` are exact (a ``_sum`` that
overflowed shows as ``+Inf``). OpenMetrics forbids a ``_sum`` once negative values
were recorded, so it is left out there.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import NamedTuple

from ... import _log
from ..._buckets import boundary_exponents, cumulative_counts
from ..._model import Kind, Point, copy, fold

__all__ = ["OPENMETRICS_CONTENT_TYPE", "TEXT_CONTENT_TYPE", "render"]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# --- names ---------------------------------------------------------------------------

_UNIT_WORDS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds",
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tebibytes",
    "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams",
    "Cel": "celsius", "Hz": "hertz", "%": "percent",
}
_PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}

_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_NOT_IN_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_UNDERSCORES = re.compile(r"__+")
_ANNOTATION = re.compile(r"\{[^}]*\}")


def _clean(text: str, invalid: re.Pattern[str]) -> str:
    cleaned = _UNDERSCORES.sub("_", invalid.sub("_", text))
    return "_" + cleaned if cleaned[:1].isdigit() else cleaned


def _unit_word(unit: str, kind: str) -> str:
    """The Prometheus word for an OpenTelemetry (UCUM) unit, "" when it has none."""
    unit = _ANNOTATION.sub("", unit).strip()  # {request}: a count of things, no unit
    if unit == "1":
        return "ratio" if kind == Kind.GAUGE else ""
    if unit in _UNIT_WORDS:
        return _UNIT_WORDS[unit]
    top, slash, bottom = unit.partition("/")
    if slash and bottom.strip():
        top_word = "" if top in ("", "1") else _UNIT_WORDS.get(top, _clean(top, _NOT_IN_LABEL).strip("_"))
        bottom_word = _PER_UNIT_WORDS.get(bottom, _clean(bottom, _NOT_IN_LABEL).strip("_"))
        return f"{top_word}_per_{bottom_word}" if top_word else f"per_{bottom_word}"
    return _clean(unit, _NOT_IN_LABEL).strip("_") if unit else ""


class _Names(NamedTuple):
    family: str  # the name in TYPE lines of the text format (counters: with _total)
    om_family: str  # the MetricFamily name in OpenMetrics (counters: without _total)
    unit: str  # the unit word, "" if none


@lru_cache(maxsize=4096)
def _names(name: str, kind: str, unit: str) -> _Names:
    base = _clean(name, _NOT_IN_NAME)
    if kind == Kind.COUNTER and base.endswith("_total") and base != "_total":
        base = base[: -len("_total")]
    word = _unit_word(unit, kind)
    if word and base != word and not base.endswith("_" + word):
        base = _UNDERSCORES.sub("_", f"{base}_{word}")
    if kind == Kind.COUNTER:
        return _Names(base + "_total", base, word)
    return _Names(base, base, word)


def _claims(names: _Names, kind: str) -> set[str]:
    """Every name a metric's lines use, to find metrics that would clash."""
    if kind == Kind.COUNTER:
        return {names.family, names.om_family, names.om_family + "_created"}
    if kind == Kind.HISTOGRAM:
        return {names.family, *(names.family + s for s in ("_bucket", "_count", "_sum", "_created"))}
    return {names.family}


def _tag_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(tags: tuple[tuple[str, object], ...], histogram: bool) -> str:
    """``a="x",b="y"``: sanitised names, colliding names joined with ';' by original key."""
    merged: dict[str, list[str]] = {}
    for key, value in sorted(tags, key=lambda item: item[0]):
        label = _clean(key, _NOT_IN_LABEL)
        if histogram and label == "le":
            label = "exported_le"
        merged.setdefault(label, []).append(_tag_value(value))
    return ",".join(f'{label}="{_escape_label_value(";".join(values))}"' for label, values in sorted(merged.items()))


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


@lru_cache(maxsize=256)
def _le(exponent: int) -> str:
    """2**exponent written as Go's shortest %g does (exponent notation from 1e6), like
    Prometheus' own clients write ``le``, but keeping Python's ``.0`` as prometheus_client does."""
    text = repr(2.0**exponent)
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


def _families(points: list[Point]) -> list[tuple[_Names, str, list[Point]]]:
    """Points grouped per metric as (names, kind, points), clashing metrics left out."""
    metrics: dict[tuple[str, str, str], list[Point]] = {}
    for point in points:
        metrics.setdefault((point.name, point.kind, point.unit), []).append(point)
    claimed: dict[str, str] = {}
    kept = []
    for (name, kind, unit), series in sorted(metrics.items(), key=lambda item: item[0]):
        names = _names(name, kind, unit)
        claims = _claims(names, kind)
        clash = next((claimed[c] for c in sorted(claims) if c in claimed), None)
        if clash is not None:
            _log.warn_once(
                ("prometheus-clash", name, kind, unit),
                "instrument: metric %r (%s) and metric %r have the same Prometheus name %r; "
                "the Prometheus endpoint leaves %r out (rename one of them)",
                name, kind, clash, names.family, name,
            )
            continue
        claimed.update(dict.fromkeys(claims, name))
        kept.append((names, kind, series))
    kept.sort(key=lambda item: item[0].family)
    return kept


def render(points: list[Point], openmetrics: bool = False) -> str:
    """Cumulative *points* in the text format 0.0.4, or in OpenMetrics 1.0."""
    out: list[str] = []
    for names, kind, series in _families(points):
        first = series[0]
        family = names.om_family if openmetrics else names.family
        about = f"{first.name} ({first.unit})" if first.unit else first.name
        out.append(f"# HELP {family} {_escape_help(about, openmetrics)}\n")
        out.append(f"# TYPE {family} {kind}\n")
        if openmetrics and names.unit and (family == names.unit or family.endswith("_" + names.unit)):
            out.append(f"# UNIT {family} {names.unit}\n")
        for labels, point in _distinct(series, kind == Kind.HISTOGRAM):
            if kind == Kind.HISTOGRAM and point.histogram is not None:
                _histogram_lines(out, names.family, labels, point, openmetrics)
                continue
            sample = names.om_family + "_total" if kind == Kind.COUNTER else names.family
            out.append(_sample(sample, labels, _number(point.value)))
            if openmetrics and kind == Kind.COUNTER:
                out.append(_sample(names.om_family + "_created", labels, _number(point.start_time)))
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out)


def _distinct(series: list[Point], histogram: bool) -> list[tuple[str, Point]]:
    """(labels, point) per label set; series whose tags give the same labels are combined."""
    found: dict[str, Point] = {}
    for point in series:
        labels = _labels(tuple(point.tags.items()), histogram)
        seen = found.get(labels)
        found[labels] = point if seen is None else _combine(seen, point)
    return list(found.items())


def _combine(first: Point, second: Point) -> Point:
    combined = copy(first)
    fold(combined, second)
    return combined


def _sample(name: str, labels: str, value: str) -> str:
    return f"{name}{{{labels}}} {value}\n" if labels else f"{name} {value}\n"


def _histogram_lines(out: list[str], family: str, labels: str, point: Point, openmetrics: bool) -> None:
    histogram = point.histogram
    assert histogram is not None
    exponents = boundary_exponents(point.unit)
    prefix = labels + "," if labels else ""
    for exponent, count in zip(exponents, cumulative_counts(histogram, exponents), strict=True):
        out.append(f'{family}_bucket{{{prefix}le="{_le(exponent)}"}} {count}\n')
    out.append(f'{family}_bucket{{{prefix}le="+Inf"}} {histogram.count}\n')
    out.append(_sample(family + "_count", labels, str(histogram.count)))
    if not (openmetrics and (histogram.negative or histogram.min < 0)):
        out.append(_sample(family + "_sum", labels, _number(histogram.sum)))
    if openmetrics:
        out.append(_sample(family + "_created", labels, _number(point.start_time)))

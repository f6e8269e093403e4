"""Prometheus names and labels of our metrics, shared by every exposition format.

Names follow OpenTelemetry's Prometheus compatibility rules: characters other than
``[a-zA-Z0-9_:]`` become ``_`` and runs of ``_`` collapse; the unit becomes a word
suffix (``s`` -> ``_seconds``, ``By`` -> ``_bytes``, ``{request}`` -> nothing, ``1``
-> ``_ratio`` for gauges) unless the name already ends with it; counters end in
``_total``. Label names are sanitised the same way (without ``:``); tags whose names
collide are joined with ``;`` in the order of their original keys, and series whose
tags give the same labels are served as one; a histogram tag called ``le`` becomes
``exported_le``. Of two metrics whose Prometheus names clash, the first by original
name is served and the other is left out, with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from ... import _log
from ..._model import Kind, Point, copy, fold

__all__ = ["Names", "distinct", "families", "label_pairs", "names"]

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


class Names(NamedTuple):
    family: str  # the name in TYPE lines of the text format (counters: with _total)
    om_family: str  # the MetricFamily name in OpenMetrics (counters: without _total)
    unit: str  # the unit word, "" if none


@lru_cache(maxsize=4096)
def names(name: str, kind: str, unit: str) -> Names:
    base = _clean(name, _NOT_IN_NAME)
    if kind == Kind.COUNTER and base.endswith("_total") and base != "_total":
        base = base[: -len("_total")]
    word = _unit_word(unit, kind)
    if word and base != word and not base.endswith("_" + word):
        base = _UNDERSCORES.sub("_", f"{base}_{word}")
    if kind == Kind.COUNTER:
        return Names(base + "_total", base, word)
    return Names(base, base, word)


def _claims(names: Names, kind: str) -> set[str]:
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


def label_pairs(tags: Mapping[str, object], histogram: bool) -> tuple[tuple[str, str], ...]:
    """(label, value) pairs sorted by label: sanitised names, colliding names' values joined
    with ';' in the order of their original keys; a histogram's ``le`` becomes ``exported_le``."""
    merged: dict[str, list[str]] = {}
    for key, value in sorted(tags.items(), key=lambda item: item[0]):
        label = _clean(key, _NOT_IN_LABEL)
        if histogram and label == "le":
            label = "exported_le"
        merged.setdefault(label, []).append(_tag_value(value))
    return tuple((label, ";".join(values)) for label, values in sorted(merged.items()))


def families(points: list[Point]) -> list[tuple[Names, str, list[Point]]]:
    """Points grouped per metric as (names, kind, points), clashing metrics left out."""
    metrics: dict[tuple[str, str, str], list[Point]] = {}
    for point in points:
        metrics.setdefault((point.name, point.kind, point.unit), []).append(point)
    claimed: dict[str, str] = {}
    kept = []
    for (name, kind, unit), series in sorted(metrics.items(), key=lambda item: item[0]):
        found = names(name, kind, unit)
        claims = _claims(found, kind)
        clash = next((claimed[c] for c in sorted(claims) if c in claimed), None)
        if clash is not None:
            _log.warn_once(
                ("prometheus-clash", name, kind, unit),
                "instrument: metric %r (%s) and metric %r have the same Prometheus name %r; "
                "the Prometheus endpoint leaves %r out (rename one of them)",
                name, kind, clash, found.family, name,
            )
            continue
        claimed.update(dict.fromkeys(claims, name))
        kept.append((found, kind, series))
    kept.sort(key=lambda item: item[0].family)
    return kept


def distinct(series: list[Point], histogram: bool) -> list[tuple[tuple[tuple[str, str], ...], Point]]:
    """(label pairs, point) per label set; series whose tags give the same labels are combined."""
    found: dict[tuple[tuple[str, str], ...], Point] = {}
    for point in series:
        labels = label_pairs(point.tags, histogram)
        seen = found.get(labels)
        found[labels] = point if seen is None else _combine(seen, point)
    return list(found.items())


def _combine(first: Point, second: Point) -> Point:
    combined = copy(first)
    fold(combined, second)
    return combined

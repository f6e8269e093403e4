"""Validation of metric names and tags, done once at declaration time.

The hot path never validates: every check here runs when a decorator is applied,
a timer is created, or the first time a `count()`/`record()`/`gauge()` call site
uses a given name and tag set.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping

TagValue = str | int | float | bool
Tags = tuple[tuple[str, TagValue], ...]

_FIRST = frozenset(string.ascii_letters)
_ALLOWED = frozenset(string.ascii_letters + string.digits + "_.-/")
_MAX_NAME = 255

RESERVED_TAG_KEYS = frozenset({"error", "otel.metric.overflow"})


def check_name(name: object) -> str:
    """Return *name* if it is a valid OpenTelemetry instrument name, else raise."""
    if not isinstance(name, str):
        raise TypeError(
            f"metric name must be a str, got {type(name).__name__}: {name!r}"
        )
    if (
        not name
        or len(name) > _MAX_NAME
        or name[0] not in _FIRST
        or not _ALLOWED.issuperset(name)
    ):
        raise ValueError(
            f"invalid metric name {name!r}: a name starts with an ASCII letter, "
            "then has at most 254 letters, digits or '_', '.', '-', '/' "
            r"(OpenTelemetry's rule [A-Za-z][A-Za-z0-9_.\-/]{0,254})"
        )
    return name


# Integer tag values are OTLP int attributes: signed 64-bit.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _plain(value: object, key: str, metric: str) -> TagValue:
    # bool before int: bool is an int subclass but is its own tag type.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return _text(str.__str__(value), f"the value of tag {key!r} of metric {metric!r}")
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(
                f"tag {key!r} of metric {metric!r} has an integer value beyond 64 bits; every "
                "exporter must be able to send it: pass it as a str"
            )
        return int(value)
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            # NaN would also make a new series at every call (NaN != NaN).
            raise ValueError(
                f"tag {key!r} of metric {metric!r} has the value {value!r}; a tag value must be "
                "finite (a label names a series, it does not measure)"
            )
        return float(value)
    raise TypeError(
        f"tag {key!r} of metric {metric!r} has a value of type "
        f"{type(value).__name__} ({value!r}); tag values are str, int, float or bool"
    )


def _text(text: str, what: str) -> str:
    """*text*, refused unless it is encodable as UTF-8 (every wire format's encoding)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what}, {text!r}, is not valid Unicode text (a lone surrogate at {exc.start}, "
            "as from an undecodable file name); decode it with errors='replace' first"
        ) from None
    return text


def check_tags(
    tags: object, metric: str, *, reserved: frozenset[str] = RESERVED_TAG_KEYS
) -> Tags:
    """Validate *tags* and return them in canonical form: a tuple of items sorted by key."""
    if tags is None:
        return ()
    if not isinstance(tags, Mapping):
        raise TypeError(
            f"tags of metric {metric!r} must be a mapping of str to "
            f"str/int/float/bool, got {type(tags).__name__}: {tags!r}"
        )
    items = []
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"tag keys of metric {metric!r} must be non-empty str, got {key!r}"
            )
        if key in reserved:
            raise ValueError(
                f"tag {key!r} of metric {metric!r} is reserved: instrument sets it itself"
            )
        items.append((_text(str.__str__(key), f"a tag key of metric {metric!r}"), _plain(value, key, metric)))
    items.sort(key=lambda item: item[0])
    return tuple(items)


def default_name(module: str | None, qualname: str) -> str:
    """The metric name `@timed` uses when none is given: ``<module>.<qualname>``.

    ``<locals>`` markers are dropped and characters the naming rule forbids become
    ``_``; the script module ``__main__`` is spelled ``main``.
    """
    parts: list[str] = []
    if module:
        parts.extend("main" if p == "__main__" else p for p in module.split("."))
    parts.extend(p for p in qualname.split(".") if p != "<locals>")
    raw = ".".join(parts)
    cleaned = "".join(c if c in _ALLOWED else "_" for c in raw)
    cleaned = cleaned.lstrip("".join(sorted(_ALLOWED - _FIRST)))
    return cleaned[:_MAX_NAME]

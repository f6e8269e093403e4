"""Helpers for testing your own instrumentation.

>>> import instrument
>>> from instrument.testing import capture
>>> with capture() as captured:
...     instrument.count("payments.declined", tags={"reason": "nsf"})
>>> captured.value("payments.declined", {"reason": "nsf"})
1

`capture()` collects what was recorded while the block ran (by any thread), merged
per series. It does not replace the configured exporters: they still receive
everything. Self-metrics (``instrument.*``) are left out unless asked for.
`reset()` puts instrument back as it was right after import, between tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ._histogram import HistogramData
from ._model import Batch, Point, merge
from ._pipeline import PIPELINE
from ._process import is_runtime_metric
from ._runtime import RUNTIME

__all__ = ["Captured", "capture", "reset"]


def reset(timeout: float = 5.0) -> None:
    """Put instrument back as it was right after ``import instrument``.

    Stops the background threads and shuts the exporters down (within *timeout*
    seconds), discards what was recorded and not exported, forgets every gauge's
    value and every `configure()` call (the ``INSTRUMENT_*`` variables are read
    again), removes the SIGTERM handler if it is instrument's, and lets each problem be
    logged once more. Declared metrics stay declared, so decorated functions keep
    working. Call it between tests that configure instrument differently.
    """
    RUNTIME.reset(timeout)


class Captured:
    """What a `capture()` block recorded: `points`, and lookups by name and tags."""

    def __init__(self, include_self_metrics: bool = False) -> None:
        self._include_self = include_self_metrics
        self._raw: list[Point] = []
        self.points: list[Point] = []

    def _collect(self, batch: Batch) -> None:
        self._raw.extend(
            p for p in batch.points
            if self._include_self or not (p.name.startswith("instrument.") or is_runtime_metric(p.name))
        )

    def _finish(self) -> None:
        self.points = merge(self._raw)

    def find(self, name: str, tags: Mapping[str, Any] | None = None) -> list[Point]:
        """Points of metric *name* whose tags include all of *tags*."""
        wanted = dict(tags or {})
        return [
            p for p in self.points
            if p.name == name and all(k in p.tags and p.tags[k] == v for k, v in wanted.items())
        ]

    def one(self, name: str, tags: Mapping[str, Any] | None = None) -> Point:
        """The single point of *name* with exactly *tags*; AssertionError otherwise."""
        wanted = dict(tags or {})
        found = [p for p in self.find(name, wanted) if p.tags == wanted]
        if len(found) != 1:
            seen = "\n  ".join(repr(p) for p in self.points) or "(nothing)"
            raise AssertionError(
                f"expected one series {name!r} with tags {wanted!r}, found {len(found)}; captured:\n  {seen}"
            )
        return found[0]

    def value(self, name: str, tags: Mapping[str, Any] | None = None) -> int | float | None:
        """A counter's total or a gauge's last value, for exactly *tags*."""
        return self.one(name, tags).value

    def histogram(self, name: str, tags: Mapping[str, Any] | None = None) -> HistogramData:
        """A timer's or distribution's merged histogram, for exactly *tags*."""
        histogram = self.one(name, tags).histogram
        if histogram is None:
            raise AssertionError(f"{name!r} is not a histogram")
        return histogram

    def names(self) -> list[str]:
        return sorted({p.name for p in self.points})


@contextmanager
def capture(*, include_self_metrics: bool = False) -> Iterator[Captured]:
    """Collect the metrics recorded inside the ``with`` block.

    Records made before the block are cut off into the exporters first; records made
    during the block (by any thread) are delivered both to the exporters and here.
    """
    captured = Captured(include_self_metrics)
    PIPELINE.cut(timeout=None)
    PIPELINE.add_listener(captured._collect)
    try:
        yield captured
    finally:
        PIPELINE.cut(timeout=None)
        PIPELINE.remove_listener(captured._collect)
        captured._finish()

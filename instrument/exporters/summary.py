"""`summary`: one table of the whole run, written to stderr at shutdown (and exit)."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from .._model import Batch, Point, merge
from . import Exporter
from ._table import render, worth_printing

if TYPE_CHECKING:
    from .._config import Config


class SummaryExporter(Exporter):
    """Merges every batch (counters summed, histograms merged) and prints them once.

    instrument's own metrics (``instrument.*``) are treated as by `console`: left out,
    except for a line when records were dropped or exports failed, unless
    ``SummaryExporter(self_metrics=True)``.
    """

    name = "summary"

    def __init__(self, config: Config | None = None, *, self_metrics: bool = False) -> None:
        super().__init__(config)
        self.self_metrics = self_metrics
        self._lock = threading.Lock()
        self._points: list[Point] = []

    def export(self, batch: Batch) -> None:
        with self._lock:
            self._points = merge(self._points + batch.points)

    def after_fork_in_child(self) -> None:
        """A forked child summarises its own records only, with an unheld lock."""
        self._lock = threading.Lock()
        self._points = []

    def shutdown(self) -> None:
        with self._lock:
            points = list(self._points)
        if not worth_printing(points, self.self_metrics):
            return
        start = min(p.start_time for p in points)
        end = max(p.end_time for p in points)
        title = f"instrument summary: {end - start:.1f}s (pid {os.getpid()})"
        sys.stderr.write(render(points, title, self_metrics=self.self_metrics))
        sys.stderr.flush()

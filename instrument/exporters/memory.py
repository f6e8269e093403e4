"""`memory`: keeps every batch in a list, for tests and for `instrument.testing`."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._model import Batch, Point, merge
from . import Exporter

if TYPE_CHECKING:
    from .._config import Config


class MemoryExporter(Exporter):
    """Holds exported batches in memory: ``exporter.batches``, ``exporter.points()``."""

    name = "memory"

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self.batches: list[Batch] = []
        self.shut_down = False

    def export(self, batch: Batch) -> None:
        with self._lock:
            self.batches.append(batch)

    def shutdown(self) -> None:
        self.shut_down = True

    def after_fork_in_child(self) -> None:
        """A forked child starts with an unheld lock (another thread may hold it now)."""
        self._lock = threading.Lock()

    def points(self, name: str | None = None, *, merged: bool = True) -> list[Point]:
        """Points exported so far (of metric *name*), merged per series unless told not to."""
        with self._lock:
            found = [p for batch in self.batches for p in batch.points if name is None or p.name == name]
        return merge(found) if merged else found

    def clear(self) -> None:
        with self._lock:
            self.batches.clear()

"""`console`: a human-readable table of each interval, written to stderr."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from .._model import Batch
from . import Exporter
from ._table import render, worth_printing

if TYPE_CHECKING:
    from .._config import Config


class ConsoleExporter(Exporter):
    """Prints each interval's table; an interval with nothing to show prints nothing.

    instrument's own metrics (``instrument.*``) are left out, except for a line when
    records were dropped or exports failed; ``ConsoleExporter(self_metrics=True)``
    shows them in a section of their own.
    """

    name = "console"

    def __init__(self, config: Config | None = None, *, self_metrics: bool = False) -> None:
        super().__init__(config)
        self.self_metrics = self_metrics

    def export(self, batch: Batch) -> None:
        if not worth_printing(batch.points, self.self_metrics):
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(batch.end_time))
        title = f"instrument: {batch.end_time - batch.start_time:.1f}s to {stamp} (pid {os.getpid()})"
        sys.stderr.write(render(batch.points, title, self_metrics=self.self_metrics))
        sys.stderr.flush()

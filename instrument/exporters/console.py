"""`console`: a human-readable table of each interval, written to stderr."""

from __future__ import annotations

import sys
import time

from .._model import Batch
from . import Exporter
from ._table import render


class ConsoleExporter(Exporter):
    name = "console"

    def export(self, batch: Batch) -> None:
        if not batch.points:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(batch.end_time))
        title = f"instrument: {batch.end_time - batch.start_time:.1f}s to {stamp} (pid {_pid()})"
        sys.stderr.write(render(batch.points, title))
        sys.stderr.flush()


def _pid() -> int:
    import os

    return os.getpid()

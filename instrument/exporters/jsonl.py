"""`jsonl`: one JSON object per series per interval, appended to a file.

Each line is a point in `Point.as_dict`'s form, with a ``resource`` object when
resource attributes are set (`instrument._resource`).

A point with a number JSON cannot hold (a sum beyond float range) is left out alone
and counted in ``instrument.records.dropped{reason=unexportable}``.

The file is opened with ``O_APPEND`` and never truncated. Lines are written whole by
``os.write`` with no user-space buffer, so pre-fork workers and separate processes
can share one file: appends of whole lines do not interleave on a local file system.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .._model import Batch
from .._resource import attributes
from . import Exporter
from ._unexportable import json_lines

if TYPE_CHECKING:
    from .._config import Config

_CHUNK = 1 << 16  # bytes per write: whole lines, up to this much


class JsonlExporter(Exporter):
    name = "jsonl"
    options = ("jsonl_path", "resource")

    def __init__(self, config: Config | None = None, path: str | None = None) -> None:
        super().__init__(config)
        chosen = path or (config.jsonl_path if config is not None else "./instrument-metrics.jsonl")
        # Fixed now, so a later chdir() by the application does not move the file.
        self.path = os.path.abspath(chosen)
        self._fd: int | None = None
        self._lock = threading.Lock()
        self.resource = attributes(config.resource if config is not None else {})  # a field of every line

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        return self._fd

    def export(self, batch: Batch) -> None:
        if not batch.points:
            return
        lines = [(line + "\n").encode() for line in json_lines(self.name, batch.points, self.resource)]
        with self._lock:
            fd = self._open()
            chunk: list[bytes] = []
            size = 0
            for line in lines:
                if chunk and size + len(line) > _CHUNK:
                    _write_all(fd, b"".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            if chunk:
                _write_all(fd, b"".join(chunk))

    def after_fork_in_child(self) -> None:
        """A forked child gets an unheld lock and its own descriptor on first export."""
        self._lock = threading.Lock()
        self._fd = None

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

"""Process and runtime metrics: CPU, memory, descriptors, threads, uptime, garbage collection.

Sampled by the collector when it cuts a batch (`ProcessMetrics.points`), never on the
hot path, under OpenTelemetry's semantic-convention names, so every exporter gets
them like any other metric (``runtime_metrics``, on by default):

| metric | kind | unit | how it adds up over pre-fork workers |
|---|---|---|---|
| ``process.cpu.time`` {``cpu.mode``: user, system} | counter | s | summed, workers past and present |
| ``process.memory.usage`` (resident) | gauge, additive | By | summed over the live workers |
| ``process.memory.virtual`` | gauge, additive | By | summed over the live workers |
| ``process.unix.file_descriptor.count`` | gauge, additive | {file_descriptor} | summed over the live workers |
| ``process.thread.count`` | gauge, additive | {thread} | summed over the live workers |
| ``process.uptime`` | gauge | s | the process's own (last one set) |
| ``cpython.gc.collections`` {``cpython.gc.generation``} | counter | {collection} | summed |
| ``cpython.gc.collected_objects`` {``cpython.gc.generation``} | counter | {object} | summed |
| ``cpython.gc.uncollectable_objects`` {``cpython.gc.generation``} | counter | {object} | summed |

An additive gauge is one process's share of a total (`Point.additive`): the Prometheus
endpoint serves the sum over the processes still running. Counters are deltas since
the previous sample; a forked child starts from what the parent had at the fork (the
kernel restarts its CPU times, the garbage collector's counts are inherited), so
nothing is counted twice. Linux's ``/proc`` gives memory and descriptors; elsewhere
those points are left out.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from ._model import Kind, Point

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

__all__ = ["RUNTIME_METRICS", "ProcessMetrics", "is_runtime_metric", "max_descriptors", "process_start_time"]

RUNTIME_METRICS = frozenset({
    "process.cpu.time", "process.memory.usage", "process.memory.virtual", "process.unix.file_descriptor.count",
    "process.thread.count", "process.uptime",
    "cpython.gc.collections", "cpython.gc.collected_objects", "cpython.gc.uncollectable_objects",
})


def is_runtime_metric(name: str) -> bool:
    """Whether *name* is one of the metrics sampled here (tables and `capture()` leave them out)."""
    return name in RUNTIME_METRICS

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_start_time() -> float:
    """When this process started (Unix time), from ``/proc``; now-ish elsewhere."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        with open("/proc/stat", "rb") as system:
            boot = next(float(line.split()[1]) for line in system if line.startswith(b"btime"))
        return boot + int(fields[19]) / _TICKS  # field 22 of stat: start time in clock ticks after boot
    except (OSError, IndexError, ValueError, StopIteration):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


class ProcessMetrics:
    """Samples this process; keeps the totals of the previous sample to report deltas."""

    def __init__(self) -> None:
        """Created with the collector's state, in a forked child too (`Pipeline`): the totals
        the parent had at the fork are the parent's to report."""
        self._start = process_start_time()
        times = os.times()
        self._cpu = {"user": times.user, "system": times.system}
        self._gc = [(s.get("collections", 0), s.get("collected", 0), s.get("uncollectable", 0)) for s in gc.get_stats()]

    def points(self, start: float, end: float) -> list[Point]:
        """This process's metrics over (*start*, *end*]: counters as deltas since the last call."""
        found: list[Point] = []

        def add(name: str, kind: str, unit: str, value: float, tags: dict[str, Any] | None = None,
                additive: bool = False) -> None:
            found.append(Point(name, kind, unit, tags or {}, start, end, value=value, additive=additive))

        times = os.times()
        for mode, now in (("user", times.user), ("system", times.system)):
            add("process.cpu.time", Kind.COUNTER, "s", max(0.0, now - self._cpu[mode]), {"cpu.mode": mode})
            self._cpu[mode] = now
        for generation, stats in enumerate(gc.get_stats()):
            now_gc = (stats.get("collections", 0), stats.get("collected", 0), stats.get("uncollectable", 0))
            before = self._gc[generation] if generation < len(self._gc) else (0, 0, 0)
            tags = {"cpython.gc.generation": generation}
            add("cpython.gc.collections", Kind.COUNTER, "{collection}", max(0, now_gc[0] - before[0]), tags)
            add("cpython.gc.collected_objects", Kind.COUNTER, "{object}", max(0, now_gc[1] - before[1]), tags)
            add("cpython.gc.uncollectable_objects", Kind.COUNTER, "{object}", max(0, now_gc[2] - before[2]), tags)
            if generation < len(self._gc):
                self._gc[generation] = now_gc
        add("process.thread.count", Kind.GAUGE, "{thread}", threading.active_count(), additive=True)
        add("process.uptime", Kind.GAUGE, "s", max(0.0, end - self._start))
        memory = _memory()
        if memory is not None:
            add("process.memory.usage", Kind.GAUGE, "By", memory[0], additive=True)
            add("process.memory.virtual", Kind.GAUGE, "By", memory[1], additive=True)
        descriptors = _descriptors()
        if descriptors is not None:
            add("process.unix.file_descriptor.count", Kind.GAUGE, "{file_descriptor}", descriptors, additive=True)
        return found


def _memory() -> tuple[int, int] | None:
    """(resident, virtual) bytes, from ``/proc/self/statm``."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            size, resident = statm.read().split()[:2]
        return int(resident) * _PAGE, int(size) * _PAGE
    except (OSError, ValueError):
        return None


def _descriptors() -> int | None:
    """Open file descriptors, from ``/proc/self/fd`` (less the one listing it)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1
    except OSError:
        return None


def max_descriptors() -> int | None:
    """The soft limit of open file descriptors (prometheus_client's ``process_max_fds``)."""
    return None if resource is None else int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])

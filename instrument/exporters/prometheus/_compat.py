"""Series Prometheus users expect beyond ours: prometheus_client's defaults, ``target_info``.

``target_info`` (OpenTelemetry's Prometheus compatibility) holds the resource
attributes (`instrument._resource`) as labels, value 1, when any is set;
``prometheus_resource_labels`` also puts the attributes it names on every series
(`with_resource_labels`), for queries that cannot join on ``target_info``.

prometheus_client's default collectors serve ``process_*`` and ``python_*`` series that
existing dashboards and alerts query. The endpoint serves them too, derived at scrape
time from the runtime metrics the processes send (`instrument._process`), beside their
OpenTelemetry names. With pre-fork workers they add up as the runtime metrics do:

| prometheus_client | from | over the workers |
|---|---|---|
| ``process_cpu_seconds_total`` | ``process.cpu.time``, user + system | summed, past and present |
| ``process_resident_memory_bytes`` | ``process.memory.usage`` | summed over the live ones |
| ``process_virtual_memory_bytes`` | ``process.memory.virtual`` | summed over the live ones |
| ``process_open_fds`` | ``process.unix.file_descriptor.count`` | summed over the live ones |
| ``process_max_fds`` | the endpoint's process's limit | the endpoint's own |
| ``process_start_time_seconds`` | the endpoint's process's start | the endpoint's own |
| ``python_gc_objects_collected_total`` | ``cpython.gc.collected_objects`` | summed |
| ``python_gc_objects_uncollectable_total`` | ``cpython.gc.uncollectable_objects`` | summed |
| ``python_gc_collections_total`` | ``cpython.gc.collections`` | summed |
| ``python_info`` | the endpoint's interpreter | the endpoint's own |

Served only when runtime metrics arrive (``runtime_metrics`` on).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence

from ..._model import Kind, Point, copy
from ..._process import max_descriptors

__all__ = ["prometheus_client_points", "target_info", "with_resource_labels"]

_SUMMED = {  # ours -> (prometheus_client's name, kind)
    "process.cpu.time": ("process_cpu_seconds_total", Kind.COUNTER),
    "process.memory.usage": ("process_resident_memory_bytes", Kind.GAUGE),
    "process.memory.virtual": ("process_virtual_memory_bytes", Kind.GAUGE),
    "process.unix.file_descriptor.count": ("process_open_fds", Kind.GAUGE),
}
_BY_GENERATION = {
    "cpython.gc.collected_objects": "python_gc_objects_collected_total",
    "cpython.gc.uncollectable_objects": "python_gc_objects_uncollectable_total",
    "cpython.gc.collections": "python_gc_collections_total",
}


def prometheus_client_points(points: list[Point], start_time: float) -> list[Point]:
    """prometheus_client's default series from the cumulative *points*; *start_time*: when
    the endpoint's process started. Nothing when no runtime metric is among *points*."""
    now = time.time()
    totals: dict[str, float] = {}
    generations: dict[tuple[str, str], float] = {}
    for point in points:
        if point.name in _SUMMED and point.value is not None:
            totals[point.name] = totals.get(point.name, 0.0) + point.value
        elif point.name in _BY_GENERATION and point.value is not None:
            key = (point.name, str(point.tags.get("cpython.gc.generation", "")))
            generations[key] = generations.get(key, 0.0) + point.value
    if not totals and not generations:
        return []
    found = [Point(_SUMMED[name][0], _SUMMED[name][1], "", {}, start_time, now, value=value)
             for name, value in totals.items()]
    found += [Point(_BY_GENERATION[name], Kind.COUNTER, "", {"generation": generation}, start_time, now, value=value)
              for (name, generation), value in generations.items()]
    found.append(Point("process_start_time_seconds", Kind.GAUGE, "", {}, start_time, now, value=start_time))
    limit = max_descriptors()
    if limit is not None:
        found.append(Point("process_max_fds", Kind.GAUGE, "", {}, start_time, now, value=limit))
    major, minor, patchlevel = platform.python_version_tuple()
    info = {"implementation": platform.python_implementation(), "major": major, "minor": minor,
            "patchlevel": patchlevel, "version": platform.python_version()}
    found.append(Point("python_info", Kind.GAUGE, "", info, start_time, now, value=1))
    return found


def target_info(resource: Mapping[str, str], start_time: float) -> list[Point]:
    """The ``target_info`` series of *resource*'s attributes; nothing without any."""
    if not resource:
        return []
    return [Point("target_info", Kind.GAUGE, "", dict(resource), start_time, time.time(), value=1)]


def with_resource_labels(points: list[Point], resource: Mapping[str, str], names: Sequence[str]) -> list[Point]:
    """*points* with the resource attributes *names* as tags (a tag of the same name wins)."""
    extra = {name: resource[name] for name in names if name in resource}
    if not extra:
        return points
    labelled = []
    for point in points:
        point = copy(point)
        point.tags = {**extra, **point.tags}
        labelled.append(point)
    return labelled

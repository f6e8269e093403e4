"""Process and runtime metrics: what a batch carries about the process, and how it adds up."""

from __future__ import annotations

import gc
import os
import threading

import instrument
from instrument._process import RUNTIME_METRICS, ProcessMetrics, is_runtime_metric

from .helpers import counter_total


def by_name(points):
    found = {}
    for point in points:
        key = point.name if not point.tags else (point.name, tuple(sorted(point.tags.items())))
        found[key] = point.value
    return found


class TestProcessMetrics:
    def test_every_runtime_metric_under_its_semantic_convention_name(self):
        """One sample holds CPU time per mode, memory, descriptors, threads, uptime and GC per generation."""
        points = ProcessMetrics().points(0.0, 1.0)
        assert RUNTIME_METRICS == {p.name for p in points}
        assert {("cpu.mode", "user"), ("cpu.mode", "system")} == {
            next(iter(p.tags.items())) for p in points if p.name == "process.cpu.time"
        }
        assert {0, 1, 2} == {p.tags["cpython.gc.generation"] for p in points if p.name == "cpython.gc.collections"}
        found = by_name(points)
        assert found["process.memory.virtual"] >= found["process.memory.usage"] > 1 << 20
        assert found["process.thread.count"] >= 1 and found["process.unix.file_descriptor.count"] >= 3

    def test_counters_are_deltas_since_the_last_sample(self):
        """Collections and CPU time count what happened since the previous sample."""
        sampler = ProcessMetrics()
        sampler.points(0.0, 1.0)
        gc.collect()
        gc.collect()
        found = by_name(sampler.points(1.0, 2.0))
        assert found[("cpython.gc.collections", (("cpython.gc.generation", 2),))] >= 2
        assert 2 > found[("process.cpu.time", (("cpu.mode", "user"),))] >= 0
        assert 0 == by_name(sampler.points(2.0, 3.0))[("cpython.gc.collections", (("cpython.gc.generation", 2),))]

    def test_gauges_follow_threads_and_descriptors(self):
        """A started thread and an opened file show in the next sample."""
        sampler = ProcessMetrics()
        before = by_name(sampler.points(0.0, 1.0))
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        try:
            with open(os.devnull) as _:
                after = by_name(sampler.points(1.0, 2.0))
        finally:
            stop.set()
            thread.join()
        assert before["process.thread.count"] + 1 == after["process.thread.count"]
        assert before["process.unix.file_descriptor.count"] + 1 == after["process.unix.file_descriptor.count"]

    def test_additive_gauges_are_shares_of_a_total(self):
        """Memory, descriptors and threads are marked additive: summed over live processes."""
        additive = {p.name for p in ProcessMetrics().points(0.0, 1.0) if p.additive}
        assert {"process.memory.usage", "process.memory.virtual", "process.unix.file_descriptor.count",
                "process.thread.count"} == additive


class TestInBatches:
    def test_on_by_default_and_switched_off_by_the_option(self, exported):
        """Every batch carries the runtime metrics unless runtime_metrics is false."""
        assert instrument.flush(5.0)
        assert RUNTIME_METRICS <= {p.name for p in exported.points()}
        instrument.configure(runtime_metrics=False)
        try:
            exported.clear()
            instrument.count("process.test.only")
            assert instrument.flush(5.0)
            assert [] == [p.name for p in exported.points() if is_runtime_metric(p.name)]
        finally:
            instrument.configure(runtime_metrics=True)

    def test_a_forked_child_reports_only_its_own_collections(self, exported):
        """What the parent collected before the fork is the parent's to report, never the child's too."""
        assert instrument.flush(5.0)
        for _ in range(5):
            gc.collect()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                exported.clear()
                instrument.flush(5.0)
                found = counter_total(exported, "cpython.gc.collections", {"cpython.gc.generation": 2})
                os.write(write, str(found).encode())
            finally:
                os._exit(0)
        os.close(write)
        child = int(os.read(read, 100))
        os.waitpid(pid, 0)
        exported.clear()
        assert instrument.flush(5.0)
        parent = counter_total(exported, "cpython.gc.collections", {"cpython.gc.generation": 2})
        assert (0, True) == (child, parent >= 5)

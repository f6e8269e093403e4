"""The per-thread buffers: nothing lost under concurrent flushes, dead threads collected,
memory capped with every drop counted, and re-entrant recording safe."""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import instrument
from instrument import _buffers
from instrument._pipeline import PIPELINE
from instrument._runtime import RUNTIME

from .helpers import counter_total


@contextmanager
def stalled_collector() -> Iterator[None]:
    """The collector started, then kept from draining, as one stuck in an export would be."""
    RUNTIME.start()  # a first record must not wait to start it
    assert PIPELINE._drain_lock.acquire(timeout=5)
    try:
        yield
    finally:
        PIPELINE._drain_lock.release()


def _histogram_count(exporter, name):
    return sum(p.histogram.count for b in exporter.batches for p in b.points if p.name == name)


class TestNothingLost:
    def test_threads_hammering_while_flushes_run(self, exported):
        """Four threads record while another flushes in a loop: the totals are exact."""
        per_thread, chunk = 50_000, 10_000
        stop = threading.Event()
        flushes = [0]  # written by the flusher only

        @instrument.timed("buffers.hammer.timed")
        def work():
            pass

        def hammer(i):
            for n in range(per_thread):
                instrument.count("buffers.hammer", tags={"t": i % 2})
                work()
                if n % chunk == chunk - 1:  # let a flush cut in before going on, however fast we are
                    seen = flushes[0]
                    while flushes[0] == seen:
                        time.sleep(0.001)

        def flusher():
            while not stop.is_set():
                instrument.flush(5.0)
                flushes[0] += 1

        flushing = threading.Thread(target=flusher)
        flushing.start()
        workers = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        flushing.join()
        assert instrument.flush(5.0)
        assert len(exported.batches) > 3  # the flushes really cut batches mid-way
        assert 4 * per_thread == counter_total(exported, "buffers.hammer")
        assert 2 * per_thread == counter_total(exported, "buffers.hammer", {"t": 0})
        assert 4 * per_thread == _histogram_count(exported, "buffers.hammer.timed")
        assert 0 == counter_total(exported, "instrument.records.dropped")

    def test_exited_threads_are_collected_not_leaked(self, exported):
        """Records of threads that have exited are exported, and their buffers forgotten."""

        def once():
            instrument.count("buffers.short.lived")

        threads = [threading.Thread(target=once) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del threads, t
        gc.collect()
        instrument.flush(5.0)
        assert 100 == counter_total(exported, "buffers.short.lived")
        instrument.flush(5.0)  # the drain after death has run
        owners = [ref() for ref, _, _ in _buffers._registry.values()]
        assert None not in owners
        assert len({id(o) for o in owners}) <= threading.active_count()


class TestBoundedMemory:
    def test_stalled_collector_caps_each_thread_and_counts_drops(self, exported):
        """With the collector stalled, a thread keeps at most buffer_size records; the rest
        are dropped and counted, so kept + dropped == recorded exactly."""
        instrument.configure(buffer_size=1000)
        recorded = 20_000
        with stalled_collector():
            for _ in range(recorded):
                instrument.count("buffers.capped")
            assert _buffers.pending() <= 1000 + 10  # other threads may hold a few
        instrument.flush(5.0)
        kept = counter_total(exported, "buffers.capped")
        dropped = counter_total(exported, "instrument.records.dropped", {"reason": "buffer_full"})
        assert kept <= 1000
        assert recorded == kept + dropped

    def test_global_cap_is_shared_between_threads(self, exported):
        """max_pending caps all threads together: each gets an equal share."""
        instrument.configure(buffer_size=100_000, max_pending=4000)
        assert 250 == _buffers.slow_threshold(100_000, 4000)
        barrier = threading.Barrier(4)

        def fill():
            barrier.wait()
            for _ in range(5000):
                instrument.count("buffers.global.cap")
            barrier.wait()  # stay alive until all have recorded

        with stalled_collector():
            threads = [threading.Thread(target=fill) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # Each thread may pass the global cap by the records it holds before its
            # first check (SLOW_AT) plus those between recounts of the others.
            slack = 4 * (_buffers.slow_threshold(100_000, 4000) + _buffers.RECOUNT_EVERY)
            assert _buffers.pending() <= 4000 + slack
        instrument.flush(5.0)
        kept = counter_total(exported, "buffers.global.cap")
        dropped = counter_total(exported, "instrument.records.dropped", {"reason": "buffer_full"})
        assert 20_000 == kept + dropped
        assert dropped > 0


    @pytest.mark.parametrize("order", ["one series after another", "round robin"])
    def test_a_thread_recording_into_many_series_holds_at_most_the_documented_bound(
        self, exported, order
    ):
        """The caps are checked when one list reaches SLOW_AT, so a thread's lists below it
        fill unchecked: a thread holds at most buffer_size + (series - 1) x SLOW_AT
        (docs/design.md, "Memory"), and filling the series one after another reaches it."""
        instrument.configure(buffer_size=1000)
        slow_at = _buffers.slow_threshold(1000, 1_048_576)  # the default max_pending
        assert 250 == slow_at
        series, per_series = 10, 2000
        names = [f"buffers.many.{i}" for i in range(series)]
        with stalled_collector():
            if order == "round robin":
                for _ in range(per_series):
                    for name in names:
                        instrument.count(name)
            else:
                for name in names:
                    for _ in range(per_series):
                        instrument.count(name)
            held = sum(len(buf) for _, s, buf in _buffers._registry.values() if s.metric.name in names)
        bound = 1000 + (series - 1) * slow_at
        assert held <= bound
        if order == "round robin":
            assert held == series * slow_at  # every list reaches SLOW_AT together, then all drop
        else:
            assert held == bound  # the first list takes the whole cap, the others SLOW_AT each
        instrument.flush(5.0)
        kept = sum(counter_total(exported, name) for name in names)
        dropped = counter_total(exported, "instrument.records.dropped", {"reason": "buffer_full"})
        assert kept == held
        assert series * per_series == kept + dropped

    def test_threads_recording_into_many_series_stay_within_the_global_bound(self, exported):
        """All threads together hold at most max_pending + threads x (series x SLOW_AT + 64)."""
        instrument.configure(buffer_size=100_000, max_pending=4000)
        slow_at = _buffers.slow_threshold(100_000, 4000)
        threads, series = 8, 3
        barrier = threading.Barrier(threads)

        def fill(t):
            barrier.wait()
            for i in range(series):
                for _ in range(2000):
                    instrument.count(f"buffers.global.many.{i}", tags={"t": t})
            barrier.wait()

        with stalled_collector():
            workers = [threading.Thread(target=fill, args=(t,)) for t in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            held = _buffers.pending()
        assert held <= 4000 + threads * (series * slow_at + _buffers.RECOUNT_EVERY)
        instrument.flush(5.0)
        kept = sum(counter_total(exported, f"buffers.global.many.{i}") for i in range(series))
        dropped = counter_total(exported, "instrument.records.dropped", {"reason": "buffer_full"})
        assert threads * series * 2000 == kept + dropped


class TestDropCounter:
    def test_counts_exactly_from_many_threads(self):
        """`DropCounter.add()` from 8 threads at once, with take() running: nothing lost
        (itertools.count is one atomic step under the GIL and in free-threaded builds)."""
        counter = _buffers.DropCounter()
        barrier = threading.Barrier(9)
        taken = []

        def add():
            barrier.wait()
            for _ in range(50_000):
                counter.add()

        workers = [threading.Thread(target=add) for _ in range(8)]
        for w in workers:
            w.start()
        barrier.wait()
        while any(w.is_alive() for w in workers):
            taken.append(counter.take())
        for w in workers:
            w.join()
        taken.append(counter.take())
        assert 8 * 50_000 == sum(taken)


class TestReentrancy:
    def test_signal_handler_records_mid_record(self, exported):
        """A signal handler that records while the main thread records: no deadlock, exact totals."""
        instrument.configure(buffer_size=64)  # also exercise the slow path under signals
        fired = 0

        def handler(signum, frame):
            nonlocal fired
            fired += 1
            instrument.count("buffers.signal.handler")
            with instrument.timer("buffers.signal.timer"):
                pass

        previous = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
        try:
            calls = 0
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                instrument.count("buffers.signal.main")
                calls += 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, previous)
        instrument.flush(5.0)
        assert fired > 10
        dropped = counter_total(exported, "instrument.records.dropped")
        timed = sum(p.histogram.count for b in exported.batches for p in b.points if p.name == "buffers.signal.timer")
        total = counter_total(exported, "buffers.signal.main") + counter_total(exported, "buffers.signal.handler")
        assert calls + 2 * fired == total + timed + dropped

    def test_del_and_gc_callbacks_record(self, exported):
        """__del__ methods and gc callbacks that record during recording are safe."""
        deleted = 0

        class Recorder:
            def __init__(self):
                self.cycle = self  # freed by the collector, inside arbitrary allocations

            def __del__(self):
                nonlocal deleted
                deleted += 1
                instrument.count("buffers.del")

        def on_gc(phase, info):
            if phase == "stop":
                instrument.count("buffers.gc.callback")

        gc.callbacks.append(on_gc)
        try:
            for i in range(20_000):
                Recorder()
                instrument.count("buffers.del.main", tags={"i": i % 3})
            gc.collect()
        finally:
            gc.callbacks.remove(on_gc)
        instrument.flush(5.0)
        assert 20_000 == counter_total(exported, "buffers.del.main")
        assert deleted == counter_total(exported, "buffers.del")
        assert counter_total(exported, "buffers.gc.callback") >= 1

    def test_logging_handler_that_records(self, exported, caplog):
        """instrument's own warnings go through logging; a handler that records does not deadlock."""

        class RecordingHandler(logging.Handler):
            def emit(self, record):
                instrument.count("buffers.logged", tags={"level": record.levelname})

        handler = RecordingHandler()
        logging.getLogger("instrument").addHandler(handler)
        try:
            instrument.configure(cardinality_limit=3)
            for i in range(10):
                instrument.count("buffers.cardinality.logged", tags={"i": i})
        finally:
            logging.getLogger("instrument").removeHandler(handler)
            instrument.configure(cardinality_limit=2000)
        instrument.flush(5.0)
        assert 1 == counter_total(exported, "buffers.logged", {"level": "WARNING"})
        assert 7 == counter_total(exported, "buffers.cardinality.logged", {"otel.metric.overflow": True})


class TestCardinality:
    def test_overflow_series_and_one_warning(self, exported, caplog):
        """Past the limit, new tag sets share one series tagged otel.metric.overflow=true."""
        instrument.configure(cardinality_limit=5)
        try:
            with caplog.at_level(logging.WARNING, logger="instrument"):
                for i in range(50):
                    instrument.count("buffers.cardinality", tags={"user": f"u{i}"})
        finally:
            instrument.configure(cardinality_limit=2000)
        instrument.flush(5.0)
        points = exported.points("buffers.cardinality")
        assert 6 == len(points)
        overflow = [p for p in points if p.tags == {"otel.metric.overflow": True}]
        assert 45 == overflow[0].value
        warnings = [r for r in caplog.records if "cardinality limit" in r.getMessage()]
        assert 1 == len(warnings)
        assert "buffers.cardinality" in warnings[0].getMessage()


@pytest.mark.parametrize("n", [0, 1, 5])
def test_drop_counter_counts_from_any_thread(n):
    counter = _buffers.DropCounter()
    threads = [threading.Thread(target=lambda: [counter.add() for _ in range(1000)]) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1000 * n == counter.take()
    assert 0 == counter.take()
    counter.add()
    assert 1 == counter.take()

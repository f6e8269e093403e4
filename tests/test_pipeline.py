"""The background pipeline: interval exports, flush and shutdown deadlines, failing and
hanging exporters, exit, and fork."""

from __future__ import annotations

import importlib.machinery
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

import instrument
from instrument._pipeline import PIPELINE
from instrument.exporters import Exporter
from instrument.exporters.memory import MemoryExporter

from .helpers import counter_total


class Failing(Exporter):
    name = "failing"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def export(self, batch):
        self.calls += 1
        raise ConnectionError("backend down")


class Slow(Exporter):
    name = "slow"

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def export(self, batch):
        time.sleep(self.seconds)


class Hanging(Exporter):
    name = "hanging"

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.exported = []

    def export(self, batch):
        self.release.wait()
        self.exported.append(batch)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def jsonl_total(path, name):
    return sum(line["value"] for line in read_jsonl(path) if line["name"] == name)


class TestExport:
    def test_flush_exports_everything_recorded_before(self, exported):
        for _ in range(10):
            instrument.count("pipeline.flush")
        assert instrument.flush(5.0) is True
        assert 10 == counter_total(exported, "pipeline.flush")

    def test_exports_every_interval_without_flush(self, exported):
        """The collector starts on the first record and exports each interval by itself."""
        instrument.configure(interval=0.05)
        instrument.count("pipeline.interval")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and counter_total(exported, "pipeline.interval") < 1:
            time.sleep(0.01)
        assert 1 == counter_total(exported, "pipeline.interval")
        assert PIPELINE._thread is not None and PIPELINE._thread.daemon

    def test_batches_carry_interval_times(self, exported):
        instrument.count("pipeline.times")
        before = time.time()
        instrument.flush(5.0)
        point = exported.points("pipeline.times")[0]
        assert point.start_time <= point.end_time <= time.time()
        assert point.end_time >= before

    def test_each_export_is_counted_and_timed_in_self_metrics(self, exported):
        """instrument.export.batches and instrument.export.duration (seconds) per exporter;
        an export is reported in the batch after it."""
        slow = Slow(0.02)
        instrument.configure(exporters=[slow, exported])
        for _ in range(3):
            instrument.count("pipeline.self")
            assert instrument.flush(5.0)
        instrument.flush(5.0)
        assert 3 <= counter_total(exported, "instrument.export.batches", {"exporter": "slow"})
        durations = [p.histogram for p in exported.points("instrument.export.duration") if p.tags["exporter"] == "slow"]
        assert 3 <= sum(h.count for h in durations)
        assert all(h.min >= 0.02 and h.max < 5 for h in durations)
        assert "s" == exported.points("instrument.export.duration")[0].unit

    def test_failing_exporter_is_counted_and_does_not_affect_others(self, exported, caplog):
        failing = Failing()
        instrument.configure(exporters=[failing, exported])
        for _ in range(3):
            instrument.count("pipeline.failing")
            instrument.flush(5.0)
        assert 3 == failing.calls
        assert 3 == counter_total(exported, "pipeline.failing")
        instrument.flush(5.0)  # failures of the last batch are reported in the next one
        assert 3 == counter_total(exported, "instrument.export.failures", {"exporter": "failing"})
        logged = [r for r in caplog.records if "exporter 'failing' failed" in r.getMessage()]
        assert 1 == len(logged)

    def test_hanging_exporter_never_blocks_recording_or_flush_past_its_timeout(self, exported):
        hanging = Hanging()
        instrument.configure(exporters=[hanging, exported], queue_size=2)
        try:
            instrument.count("pipeline.hanging", tags={"n": 0})
            start = time.monotonic()
            assert instrument.flush(0.3) is False
            assert time.monotonic() - start < 2.0
            assert 1 == counter_total(exported, "pipeline.hanging")  # the other exporter got it
            for n in range(1, 6):  # batch 0 in export, 2 waiting: each new one pushes out the oldest
                instrument.count("pipeline.hanging", tags={"n": n})
                instrument.flush(0.05)
            assert [] == hanging.exported  # still inside its first export()
        finally:
            hanging.release.set()
        assert instrument.flush(5.0)
        received = [p.tags["n"] for b in hanging.exported for p in b.points if p.name == "pipeline.hanging"]
        # The queue holds 2 batches: new ones push out the oldest, so 1, 2 and 3 never arrive
        # and the latest (5) does; 4 too unless a later batch pushed it out.
        assert 0 == received[0] and 5 == received[-1] and not {1, 2, 3} & set(received), received
        assert len(hanging.exported) <= 1 + 2 + 1  # the one in export, the queue, the last flush
        dropped = counter_total(exported, "instrument.records.dropped",
                                {"reason": "export_queue_full", "exporter": "hanging"})
        assert dropped >= 3  # their records, self-metrics included
        assert 6 == counter_total(exported, "pipeline.hanging")

    def test_reentrant_flush_from_a_listener_returns_false(self, exported):
        results = []

        def listener(batch):
            results.append(instrument.flush(1.0))

        PIPELINE.add_listener(listener)
        try:
            instrument.flush(5.0)
        finally:
            PIPELINE.remove_listener(listener)
        assert [False] == results


class LiveMemory(MemoryExporter):
    """A memory exporter that asks for live batches, as the Prometheus endpoint does."""

    name = "live-memory"
    live = True


def wait_until(condition, timeout=10.0):
    """Poll *condition* until true; False after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class TestLiveExporters:
    @pytest.fixture
    def live(self, exported):
        """A live exporter beside `exported` (not live), batches every 0.05 s, intervals of an hour."""
        created = LiveMemory()
        instrument.configure(exporters=[created, exported], interval=3600.0, live_interval=0.05)
        yield created
        instrument.configure(exporters=[exported], live_interval=0.1)

    def test_live_exporters_get_records_between_intervals(self, live, exported):
        """Without a flush, a live exporter gets what was recorded within its live_interval; others wait."""
        instrument.count("live.jobs", 3)
        assert wait_until(lambda: counter_total(live, "live.jobs") == 3)
        instrument.count("live.jobs", 4)
        assert wait_until(lambda: counter_total(live, "live.jobs") == 7)
        assert (0, 2) <= (counter_total(exported, "live.jobs"), len(live.batches))
        assert 0 == counter_total(exported, "live.jobs")

    def test_every_exporter_gets_every_record_once(self, live, exported):
        """After the interval's cut, the live exporter and the others each hold the exact totals;
        the others got the interval as one batch."""
        instrument.count("live.once", 1)
        assert wait_until(lambda: counter_total(live, "live.once") == 1)
        instrument.count("live.once", 2)
        instrument.record("live.sizes", 5.0)
        assert instrument.flush(5.0)
        assert (3, 3) == (counter_total(live, "live.once"), counter_total(exported, "live.once"))
        assert [1, 1] == [p.histogram.count for p in (live.points("live.sizes")[0], exported.points("live.sizes")[0])]
        assert 1 == sum(1 for b in exported.batches if any(p.name == "live.once" for p in b.points))

    def test_listeners_get_the_interval_once(self, live):
        """capture() sees records cut early for live exporters exactly once."""
        from instrument.testing import capture

        with capture() as captured:
            instrument.count("live.captured", 2)
            assert wait_until(lambda: counter_total(live, "live.captured") == 2)
            instrument.count("live.captured", 5)
        assert 7 == sum(p.value for p in captured.points if p.name == "live.captured")

    def test_batches_between_intervals_are_not_self_metrics(self, live, exported):
        """Live batches cut between intervals are not counted in instrument.export.batches: an idle
        process then sends nothing."""
        instrument.count("live.quiet", 1)
        assert wait_until(lambda: counter_total(live, "live.quiet") == 1)
        assert instrument.flush(5.0)  # counted: its self-metrics make one more live batch
        assert wait_until(lambda: counter_total(live, "instrument.export.batches", {"exporter": "live-memory"}) == 1)
        quiet = len(live.batches)
        time.sleep(0.3)  # six live periods with nothing recorded
        assert quiet == len(live.batches)


class TestShutdown:
    def test_shutdown_flushes_and_shuts_exporters_down(self):
        exporter = MemoryExporter()
        instrument.configure(exporters=[exporter])
        instrument.count("pipeline.shutdown")
        assert instrument.shutdown(5.0) is True
        assert exporter.shut_down
        assert 1 == counter_total(exporter, "pipeline.shutdown")
        instrument.configure(exporters=[])  # configure() opens the pipeline again

    def test_shutdown_returns_by_its_deadline_with_a_hanging_exporter(self):
        hanging = Hanging()
        instrument.configure(exporters=[hanging])
        instrument.count("pipeline.shutdown.hang")
        start = time.monotonic()
        try:
            assert instrument.shutdown(0.5) is False
            assert time.monotonic() - start < 2.0
        finally:
            hanging.release.set()
            instrument.configure(exporters=[])


def run_python(code, tmp_path, env=None, timeout=60):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


class TestExit:
    def test_short_script_loses_nothing_at_exit(self, tmp_path):
        """Records made right before a normal exit are exported by the atexit hook."""
        out = tmp_path / "m.jsonl"
        result = run_python(
            """
            import instrument
            for _ in range(1000):
                instrument.count("exit.records")
            """,
            tmp_path,
            {"INSTRUMENT_EXPORTERS": "jsonl", "INSTRUMENT_JSONL_PATH": str(out)},
        )
        assert 0 == result.returncode, result.stderr
        assert 1000 == jsonl_total(out, "exit.records")

    def test_hanging_exporter_does_not_block_exit_past_the_deadline(self, tmp_path):
        start = time.monotonic()
        result = run_python(
            """
            import threading, time, instrument
            from instrument.exporters import Exporter
            class Hang(Exporter):
                def export(self, batch):
                    threading.Event().wait()
            instrument.configure(exporters=[Hang()], exit_timeout=0.5)
            instrument.count("exit.hang")
            """,
            tmp_path,
            timeout=20,
        )
        assert 0 == result.returncode, result.stderr
        assert time.monotonic() - start < 10  # 0.5 s exit deadline plus interpreter start-up


class TestFork:
    def test_os_fork_exports_each_record_once(self, tmp_path):
        """Pending records at fork time are exported by the parent only; the child exports its own."""
        out = tmp_path / "fork.jsonl"
        instrument.configure(exporters=["jsonl"], jsonl_path=str(out), interval=3600.0)
        try:
            for _ in range(100):
                instrument.count("fork.records", tags={"who": "before"})
            pid = os.fork()
            if pid == 0:
                try:
                    for _ in range(10):
                        instrument.count("fork.records", tags={"who": "child"})
                    instrument.flush(5.0)
                finally:
                    os._exit(0)
            for _ in range(1):
                instrument.count("fork.records", tags={"who": "parent"})
            _, status = os.waitpid(pid, 0)
            assert 0 == status
            instrument.flush(5.0)
        finally:
            instrument.configure(exporters=[])
        lines = [line for line in read_jsonl(out) if line["name"] == "fork.records"]
        by_who = {}
        for line in lines:
            by_who[line["tags"]["who"]] = by_who.get(line["tags"]["who"], 0) + line["value"]
        assert {"before": 100, "child": 10, "parent": 1} == by_who

    def test_child_has_its_own_collector(self, tmp_path):
        """A forked child exports on its interval without any flush call."""
        out = tmp_path / "child.jsonl"
        instrument.configure(exporters=["jsonl"], jsonl_path=str(out), interval=0.05)
        try:
            instrument.count("fork.collector.parent")
            pid = os.fork()
            if pid == 0:
                try:
                    instrument.count("fork.collector.child")
                    time.sleep(1.0)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
        finally:
            instrument.configure(exporters=[], interval=10.0)
        assert 1 == jsonl_total(out, "fork.collector.child")

    def test_multiprocessing_fork_pool_exact_totals(self, tmp_path):
        """Pool workers end with os._exit(); their records are flushed by multiprocessing's finalizers."""
        out = tmp_path / "pool.jsonl"
        instrument.configure(exporters=["jsonl"], jsonl_path=str(out), interval=3600.0)
        try:
            instrument.count("pool.parent")
            ctx = multiprocessing.get_context("fork")
            pool = ctx.Pool(3)
            try:
                assert list(range(200)) == pool.map(_pool_task, range(200), chunksize=7)
            finally:
                pool.close()
                pool.join()
            instrument.flush(5.0)
        finally:
            instrument.configure(exporters=[])
        assert 200 == jsonl_total(out, "pool.tasks")
        assert 1 == jsonl_total(out, "pool.parent")


def _pool_task(i):
    instrument.count("pool.tasks")
    return i


@pytest.mark.parametrize("module", ["logging", "json", "inspect", "asyncio", "importlib.metadata", "dataclasses"])
def test_import_is_light(module):
    """`import instrument` imports nothing heavy: logging and the like load on demand."""
    code = f"import sys, instrument; print({module!r} in sys.modules)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "False" == result.stdout.strip(), result.stderr


@pytest.mark.parametrize("configured", ["", "jsonl", "statsd", "prometheus"])
def test_only_configured_exporter_modules_are_imported(configured):
    """Each exporter's module (and its dependency) is imported when it is configured, not before."""
    code = (
        "import sys, instrument; instrument.count('x'); instrument.flush(5.0); "
        "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('instrument.exporters.')"
        " and not m.rsplit('.', 1)[1].startswith('_')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
    if configured:
        env["INSTRUMENT_EXPORTERS"] = configured
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            env["INSTRUMENT_PROMETHEUS_ADDRESS"] = f"127.0.0.1:{probe.getsockname()[1]}"
        env["INSTRUMENT_JSONL_PATH"] = os.devnull
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert 0 == result.returncode, result.stderr
    assert str([configured] if configured else []) == result.stdout.strip()


def test_the_collector_thread_starts_on_the_first_record():
    code = (
        "import threading, instrument\n"
        "names = lambda: sorted(t.name for t in threading.enumerate() if t.name.startswith('instrument'))\n"
        "@instrument.timed('lazy.work')\n"
        "def work(): pass\n"
        "print(names())\n"
        "work()\n"
        "print(names())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert ["[]", "['instrument-collector']"] == result.stdout.splitlines(), result.stderr


def test_the_kill_switch_starts_no_exporter_at_import():
    """INSTRUMENT_ENABLED=false: the Prometheus endpoint, which otherwise starts at import, does not
    (the port is held here, so trying would warn), and no instrument thread runs."""
    code = (
        "import threading, instrument; instrument.count('x'); "
        "print([t.name for t in threading.enumerate() if t.name.startswith('instrument')])"
    )
    with socket.create_server(("127.0.0.1", 0)) as held:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
        env.update(
            INSTRUMENT_ENABLED="false",
            INSTRUMENT_EXPORTERS="prometheus",
            INSTRUMENT_PROMETHEUS_ADDRESS=f"127.0.0.1:{held.getsockname()[1]}",
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert (0, "[]", "") == (result.returncode, result.stdout.strip(), result.stderr)


class Recording(Exporter):
    """Remembers every call, to check the pipeline's lifecycle."""

    name = "recording"

    def __init__(self, config=None):
        super().__init__(config)
        self.events = []

    def export(self, batch):
        self.events.append("export")

    def shutdown(self):
        self.events.append("shutdown")


class TestLifecycle:
    def test_shutdown_stops_the_collector_even_past_its_deadline(self):
        exporter = Recording()
        instrument.configure(exporters=[exporter], interval=0.01)
        try:
            instrument.count("lifecycle.stop")
            collector = PIPELINE._thread
            (worker,) = PIPELINE._workers
            instrument.shutdown(0.0)
            collector.join(5)
            assert not collector.is_alive()
            # Past its deadline, the export thread still hands over what was queued, then ends.
            worker.thread.join(5)
            assert not worker.thread.is_alive()
            assert "shutdown" == exporter.events[-1]
            exported = exporter.events.count("export")
            time.sleep(0.1)
            assert exported == exporter.events.count("export")  # no new batches: the collector is gone
        finally:
            instrument.configure(exporters=[], interval=10.0)

    def test_flush_after_shutdown_does_not_reach_shut_down_exporters(self):
        exporter = Recording()
        instrument.configure(exporters=[exporter])
        try:
            instrument.count("lifecycle.after")
            instrument.shutdown(5.0)
            instrument.flush(1.0)
            instrument.shutdown(1.0)
            assert ["export", "shutdown"] == exporter.events
        finally:
            instrument.configure(exporters=[])

    def test_configuring_the_same_exporter_object_again_keeps_it_running(self):
        exporter = Recording()
        instrument.configure(exporters=[exporter])
        try:
            instrument.count("lifecycle.same")
            instrument.flush(5.0)
            instrument.configure(exporters=[exporter], interval=5.0)
            instrument.count("lifecycle.same")
            instrument.flush(5.0)
            assert ["export", "export"] == exporter.events
        finally:
            instrument.configure(exporters=[], interval=10.0)  # replaced: shut down in the background
        deadline = time.monotonic() + 5
        while "shutdown" not in exporter.events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ["export", "export", "shutdown"] == exporter.events

    def test_changing_an_exporter_option_recreates_that_exporter(self, tmp_path):
        first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        instrument.configure(exporters=["jsonl"], jsonl_path=str(first))
        try:
            instrument.count("lifecycle.path")
            instrument.flush(5.0)
            instrument.configure(jsonl_path=str(second))
            instrument.count("lifecycle.path")
            instrument.flush(5.0)
        finally:
            instrument.configure(exporters=[])
        assert 1 == jsonl_total(first, "lifecycle.path")
        assert 1 == jsonl_total(second, "lifecycle.path")

    def test_concurrent_configure_and_flush_create_no_stray_exporters(self):
        """Every exporter created is shut down exactly once, however configure and flush interleave."""
        from instrument import exporters

        created = []

        class Counting(Recording):
            def __init__(self, config=None):
                super().__init__(config)
                created.append(self)

        exporters.BUILTIN["counting-test"] = f"{__name__}:_Counting"
        globals()["_Counting"] = Counting
        stop = threading.Event()

        def flusher():
            while not stop.is_set():
                instrument.count("lifecycle.race")
                instrument.flush(1.0)

        thread = threading.Thread(target=flusher)
        thread.start()
        try:
            for i in range(100):
                instrument.configure(exporters=["counting-test"], jsonl_path=f"./unused-{i % 2}.jsonl")
                instrument.configure(exporters=[])
        finally:
            stop.set()
            thread.join()
            instrument.shutdown(5.0)
            instrument.configure(exporters=[])
            del exporters.BUILTIN["counting-test"]
        assert 100 == len(created)
        assert [1] * 100 == [e.events.count("shutdown") for e in created]

    def test_disabled_pipeline_keeps_its_schedule(self):
        """While switched off, a cut still moves the schedule on (the collector sleeps, not spins)."""
        instrument.configure(enabled=False)
        try:
            before = PIPELINE._last_cut
            time.sleep(0.01)
            assert PIPELINE.cut(timeout=1.0) is None
            assert PIPELINE._last_cut > before
        finally:
            instrument.configure(enabled=True)

    def test_flush_inside_an_exporter_wait_does_not_deadlock(self, exported):
        """A signal handler calling flush() while its thread holds a worker's lock returns."""
        instrument.count("lifecycle.reentrant")
        instrument.flush(5.0)
        worker = PIPELINE._workers[0]
        with worker._cond:
            assert instrument.flush(2.0) in (True, False)


EARLY_FORK = textwrap.dedent("""
    import os, random, sys, time
    import instrument

    instrument.count("early.parent")  # starts the pipeline (from the environment)
    time.sleep(random.uniform(0.0, 0.020))
    pid = os.fork()
    if pid == 0:
        instrument.count("early.child", 3, tags={"trial": sys.argv[1]})
    else:
        os.waitpid(pid, 0)
""")

# Processes forking at a random moment of their first 20 ms (tox runs 200 under one
# interpreter).
FORK_TRIALS = int(os.environ.get("INSTRUMENT_FORK_TRIALS", "20"))


class TestForkAtAnyMoment:
    def test_a_child_forked_soon_after_the_first_record_exports_its_records(self, tmp_path):
        """Forked 0-20 ms after the parent's first record, every child's records arrive."""
        script = tmp_path / "early.py"
        script.write_text(EARLY_FORK)
        out = tmp_path / "early.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        env.update(INSTRUMENT_EXPORTERS="jsonl", INSTRUMENT_JSONL_PATH=str(out), INSTRUMENT_INTERVAL="3600")

        def trial(number):
            return subprocess.run([sys.executable, str(script), str(number)], env=env, capture_output=True,
                                  text=True, timeout=60)

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(trial, range(FORK_TRIALS)))
        # Python 3.12+ warns that forking a multi-threaded process may deadlock the child:
        # that warning is what this test proves harmless here.
        assert [] == [r.stderr for r in results if r.returncode or "instrument" in r.stderr]
        children = {line["tags"]["trial"]: line["value"] for line in read_jsonl(out) if line["name"] == "early.child"}
        assert {str(n): 3 for n in range(FORK_TRIALS)} == children


class TestForkMore:
    def test_child_forgets_half_imported_modules_of_ours(self):
        """A fork during an import on another thread leaves no half module in the child."""
        half = types.ModuleType("instrument.exporters.half_imported")
        half.__spec__ = importlib.machinery.ModuleSpec(half.__name__, None)
        half.__spec__._initializing = True
        sys.modules[half.__name__] = half
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(0 if half.__name__ not in sys.modules else 1)
        finally:
            sys.modules.pop(half.__name__, None)
        assert 0 == os.waitpid(pid, 0)[1]

    def test_grandchild_exports_its_own_records_once(self, tmp_path):
        out = tmp_path / "tree.jsonl"
        instrument.configure(exporters=["jsonl"], jsonl_path=str(out), interval=3600.0)
        try:
            instrument.count("tree.records", tags={"who": "parent"})
            pid = os.fork()
            if pid == 0:
                try:
                    instrument.count("tree.records", tags={"who": "child"})
                    grandchild = os.fork()
                    if grandchild == 0:
                        try:
                            instrument.count("tree.records", tags={"who": "grandchild"})
                            instrument.flush(5.0)
                        finally:
                            os._exit(0)
                    os.waitpid(grandchild, 0)
                    instrument.flush(5.0)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            instrument.flush(5.0)
        finally:
            instrument.configure(exporters=[])
        by_who = {}
        for line in read_jsonl(out):
            if line["name"] == "tree.records":
                by_who[line["tags"]["who"]] = by_who.get(line["tags"]["who"], 0) + line["value"]
        assert {"parent": 1, "child": 1, "grandchild": 1} == by_who

    def test_fork_while_an_exporter_holds_its_lock(self, exported):
        """The child's copy of an exporter object never inherits a held lock."""
        exported._lock.acquire()  # as if the parent's export thread were inside export()
        try:
            pid = os.fork()
            if pid == 0:
                ok = False
                try:
                    instrument.count("fork.locked")
                    ok = instrument.flush(2.0) and bool(exported.points("fork.locked"))
                finally:
                    os._exit(0 if ok else 1)
        finally:
            exported._lock.release()
        assert 0 == os.waitpid(pid, 0)[1]

    def test_forkserver_pool_exact_totals(self, tmp_path, monkeypatch):
        """Workers that import instrument after their fork (forkserver) flush before os._exit()."""
        out = tmp_path / "forkserver.jsonl"
        monkeypatch.setenv("INSTRUMENT_EXPORTERS", "jsonl")
        monkeypatch.setenv("INSTRUMENT_JSONL_PATH", str(out))
        ctx = multiprocessing.get_context("forkserver")
        pool = ctx.Pool(2)
        try:
            assert list(range(50)) == pool.map(_pool_task, range(50), chunksize=5)
        finally:
            pool.close()
            pool.join()
        assert 50 == jsonl_total(out, "pool.tasks")

    @pytest.mark.parametrize("method", ["spawn", "forkserver"])
    def test_pool_of_a_main_module_that_imports_instrument(self, tmp_path, method):
        """Spawn and forkserver workers import the main module, and with it instrument, before
        multiprocessing's bootstrap clears their exit finalizers. Spawn workers then leave through
        sys.exit() (atexit flushes); forkserver workers through os._exit(), so only the finalizer can."""
        out = tmp_path / "main.jsonl"
        script = tmp_path / "main.py"
        script.write_text(textwrap.dedent("""
            import multiprocessing, sys
            import instrument

            def task(i):
                instrument.count("main.pool.tasks")
                return i

            if __name__ == "__main__":
                pool = multiprocessing.get_context(sys.argv[1]).Pool(2)
                assert list(range(60)) == pool.map(task, range(60), chunksize=7)
                pool.close()
                pool.join()
        """))
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        env.update(INSTRUMENT_EXPORTERS="jsonl", INSTRUMENT_JSONL_PATH=str(out))
        result = subprocess.run([sys.executable, str(script), method], env=env, capture_output=True, text=True,
                                timeout=120)
        assert 0 == result.returncode, result.stderr
        assert 60 == jsonl_total(out, "main.pool.tasks")

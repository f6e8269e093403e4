"""The C fast path (instrument._fast): chosen as documented, and indistinguishable from the
pure-Python path in what it records, raises and lets `inspect` see.

The whole suite runs once per path (tox: py311 on the C path, py311-pure with
INSTRUMENT_PURE_PYTHON=1); the tests here compare the two side by side in one process.
"""

from __future__ import annotations

import copy
import gc
import inspect
import os
import pickle
import subprocess
import sys
import sysconfig
import threading
import types
import weakref

import pytest

import instrument
from instrument import _metrics, _record, _speedups, _timer
from instrument.testing import capture

from .helpers import IN_CI

PURE_WANTED = os.environ.get("INSTRUMENT_PURE_PYTHON", "").strip().lower() in {"1", "true", "yes", "on"}


def need_c_path() -> types.ModuleType:
    """The C extension; skip without it (this run tests the pure path), but fail in CI unless
    the pure path was asked for."""
    if _speedups.fast is not None:
        return _speedups.fast
    if PURE_WANTED:
        pytest.skip("INSTRUMENT_PURE_PYTHON is set: this run tests the pure-Python path")
    message = f"the C fast path is not active: {_speedups.REASON}"
    if IN_CI:
        pytest.fail(message + " (INSTRUMENT_CI=1: `pip install .` must build it; a C compiler is needed)")
    pytest.skip(message)


@pytest.fixture(params=["python", "c"])
def path(request, monkeypatch):
    """Run the test on one path: decorators and the record functions of that path."""
    if request.param == "c":
        need_c_path()
        return types.SimpleNamespace(
            name="c", count=_record.count, record=_record.record, gauge=_record.gauge, timer=_timer.timer
        )
    monkeypatch.setattr(_speedups, "fast", None)  # _decorate.wrap then builds the Python wrappers

    def pure_timer(name, tags=None):
        return _timer.PureTimerCore(_timer.PURE_TIMER(name, tags)._series)

    return types.SimpleNamespace(
        name="python",
        count=_record.PURE["count"],
        record=_record.PURE["record"],
        gauge=_record.PURE["gauge"],
        timer=pure_timer,
    )


class Boom(Exception):
    pass


@instrument.timed("speedups.module.level")
def module_level(x):
    return x


class TestWhichPath:
    def test_instrument_says_which_path_runs(self):
        """instrument.__speedups__ is True exactly when the C extension records."""
        assert (_speedups.fast is not None) == instrument.__speedups__
        assert (type(instrument.count) is types.BuiltinFunctionType) == instrument.__speedups__

    def test_the_variable_forces_the_pure_path(self):
        """INSTRUMENT_PURE_PYTHON=1: the pure-Python path runs, and says why."""
        env = {**os.environ, "INSTRUMENT_PURE_PYTHON": "1"}
        code = (
            "import instrument, instrument._speedups as s\n"
            "print(instrument.__speedups__, type(instrument.count).__name__, s.REASON)"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert "False function INSTRUMENT_PURE_PYTHON is set" == out.stdout.strip()

    def test_the_c_path_runs_where_it_was_built(self):
        """Where the extension was built and the pure path not asked for, the C path runs."""
        fast = need_c_path()
        assert instrument.__speedups__
        assert fast.count is instrument.count
        assert (True, _record.SLOW_AT) == fast.state()

    def test_free_threaded_builds_keep_the_gil_off(self):
        """On free-threaded CPython the extension declares it needs no GIL (importing it keeps it off)."""
        fast = need_c_path()
        if not sysconfig.get_config_var("Py_GIL_DISABLED"):
            assert 0 == fast.FREE_THREADED
            pytest.skip("not a free-threaded CPython")
        assert 1 == fast.FREE_THREADED
        assert not sys._is_gil_enabled()


class TestSameRecords:
    def test_timed_and_counted_record_the_same(self, path):
        """Durations, counts and error tags, through arguments and keywords, on either path."""

        def f(a, b=1, *, c=0):
            if c:
                raise Boom(c)
            return a + b

        timed = instrument.timed(f"speedups.same.{path.name}.timed", tags={"t": "1"})(f)
        counted = instrument.counted(f"speedups.same.{path.name}.counted")(f)
        with capture() as captured:
            for fn in (timed, counted):
                assert 3 == fn(1, 2)
                assert 2 == fn(a=1, b=1)
                with pytest.raises(Boom):
                    fn(1, c=5)
        assert 2 == captured.histogram(f"speedups.same.{path.name}.timed", {"t": "1"}).count
        assert 1 == captured.histogram(
            f"speedups.same.{path.name}.timed", {"t": "1", "error": "tests.test_speedups.Boom"}
        ).count
        assert 2 == captured.value(f"speedups.same.{path.name}.counted")
        assert 1 == captured.value(f"speedups.same.{path.name}.counted", {"error": "tests.test_speedups.Boom"})

    def test_the_same_exception_object_and_traceback_propagate(self, path):
        raised = Boom("x")

        @instrument.timed(f"speedups.raise.{path.name}")
        def f():
            raise raised

        with pytest.raises(Boom) as info:
            f()
        assert info.value is raised
        assert "f" == info.traceback[-1].frame.code.name  # the traceback still ends where it was raised

    def test_count_record_gauge_by_position_and_keyword(self, path):
        name = f"speedups.values.{path.name}"
        with capture() as captured:
            path.count(name + ".count")
            path.count(name + ".count", 2, {"k": "v"})
            path.count(name=name + ".count", value=3, tags=types.MappingProxyType({"k": "v"}))
            path.count(name + ".bytes", 2**70, unit="By")
            path.count(name + ".bytes", 1.5, unit="By")
            path.record(name + ".record", -2.5, tags={"a": 1, "b": True})
            path.record(name + ".record", 7, {"b": True, "a": 1})
            path.gauge(name + ".gauge", 4)
            path.gauge(name + ".gauge", value=-1.0)
            with path.timer(name + ".timer", {"x": "y"}):
                pass
        assert 1 == captured.value(name + ".count")
        assert 5 == captured.value(name + ".count", {"k": "v"})
        assert 2**70 + 1.5 == captured.value(name + ".bytes")
        assert [4.5, 2] == [captured.histogram(name + ".record", {"a": 1, "b": True}).sum,
                            captured.histogram(name + ".record", {"a": 1, "b": True}).count]
        assert -1.0 == captured.value(name + ".gauge")
        assert 1 == captured.histogram(name + ".timer", {"x": "y"}).count

    @pytest.mark.parametrize(
        "call",
        [
            lambda p: p.count("speedups.bad", -1),
            lambda p: p.count("speedups.bad", True),
            lambda p: p.count("speedups.bad", "1"),
            lambda p: p.count("speedups.bad", float("inf")),
            lambda p: p.record("speedups.bad.r", float("nan")),
            lambda p: p.record("speedups.bad.r", 2**2000),
            lambda p: p.gauge("speedups.bad.g", None),
            lambda p: p.count("1bad"),
            lambda p: p.count("speedups.bad", tags={"k": [1]}),
            lambda p: p.count("speedups.bad", tags=["k"]),
            lambda p: p.record("speedups.bad.unit", 1, unit="s") or p.record("speedups.bad.unit", 1, unit="ms"),
            lambda p: p.timer("1bad"),
        ],
    )
    def test_bad_values_raise_the_same_errors(self, call):
        """Each rejected call raises the same exception, with the same message, on both paths."""
        need_c_path()
        outcomes = []
        for p in ("python", "c"):
            functions = types.SimpleNamespace(
                count=_record.PURE["count"] if p == "python" else _record.count,
                record=_record.PURE["record"] if p == "python" else _record.record,
                gauge=_record.PURE["gauge"] if p == "python" else _record.gauge,
                timer=_timer.PURE_TIMER if p == "python" else _timer.timer,
            )
            with pytest.raises((TypeError, ValueError)) as info:
                call(functions)
            outcomes.append((type(info.value), str(info.value)))
        assert outcomes[0] == outcomes[1]

    @pytest.mark.parametrize(
        "args, kwargs",
        [((), {}), (("a", 1, None, None), {}), (("a",), {"foo": 1}), (("a", 1), {"value": 2}), ((), {"value": 1})],
    )
    def test_bad_arguments_are_type_errors(self, path, args, kwargs):
        with pytest.raises(TypeError):
            path.count(*args, **kwargs)

    def test_kill_switch(self, path, exported):
        """enabled=False: count()/record()/gauge() and a timer's exit record nothing."""
        name = f"speedups.off.{path.name}"
        timer = path.timer(name + ".timer")
        instrument.configure(enabled=False)
        try:
            path.count(name + ".count")
            path.record(name + ".record", 1)
            path.gauge(name + ".gauge", 1)
            with timer:
                pass
        finally:
            instrument.configure(enabled=True)
        with timer:
            pass
        instrument.flush(5.0)
        assert [] == exported.points(name + ".count") == exported.points(name + ".gauge")
        assert 1 == exported.points(name + ".timer")[0].histogram.count

    def test_timer_exit_without_enter_records_nothing(self, path):
        timer = path.timer(f"speedups.unbalanced.{path.name}")
        with capture() as captured:
            assert timer.__exit__(None, None, None) is None
        assert [] == captured.names()


class TestCallSites:
    """The C path finds a call site's series without building its key when it saw it before
    (a memo in front of the call-site cache); it must name the series the cache names."""

    def test_equal_tag_values_of_other_types_find_what_the_cache_finds(self):
        """1, 1.0 and True are equal dict keys: the C path's series are the pure path's."""
        need_c_path()
        found = []
        paths = ((_record.PURE["count"], "speedups.sites.equal.py"), (_record.count, "speedups.sites.equal.c"))
        for count, name in paths:
            with capture() as captured:
                for value in (1, 1.0, True, 1, "1", True, 2.0, 2):
                    count(name, 1, {"v": value})
            found.append(sorted((repr(p.tags), p.value) for p in captured.find(name)))
        assert found[0] == found[1]
        assert 3 == len(found[0])

    def test_a_tags_dict_changed_in_place_is_a_new_call_site(self, path):
        name = f"speedups.sites.mutated.{path.name}"
        tags = {"status": "ok"}
        with capture() as captured:
            path.count(name, 1, tags)
            tags["status"] = "failed"
            path.count(name, 1, tags)
            tags["extra"] = "x"
            path.count(name, 1, tags)
            del tags["extra"], tags["status"]
            path.count(name, 1, tags)
        assert 1 == captured.value(name, {"status": "ok"})
        assert 1 == captured.value(name, {"status": "failed"})
        assert 1 == captured.value(name, {"status": "failed", "extra": "x"})
        assert 1 == captured.value(name, {})

    def test_more_call_sites_than_the_memo_holds(self, path):
        """Thousands of distinct call sites, revisited: every record lands in its own series."""
        name = f"speedups.sites.many.{path.name}"
        with capture() as captured:
            for _ in range(3):
                for i in range(2000):
                    path.record(name, i, {"i": i % 1000, "half": i < 1000})
        for i in (0, 1, 999, 1000, 1999):
            assert 3 == captured.histogram(name, {"i": i % 1000, "half": i < 1000}).count

    def test_a_timer_still_in_use_is_never_handed_out_again(self, path):
        name = f"speedups.sites.timer.{path.name}"
        with capture() as captured:
            outer = path.timer(name)
            with outer:
                inner = path.timer(name)
                assert inner is not outer
                with inner:
                    pass
            left_open = path.timer(name)
            left_open.__enter__()
            del left_open
            with path.timer(name) as fresh:
                pass
            assert fresh.__exit__(None, None, None) is None  # its one start was used: no record
        assert 3 == captured.histogram(name).count


class TestSameObject:
    """What a decorated function looks like: the same on both paths."""

    def test_inspect_answers(self, path):
        def original(a: int, b: str = "x", *args: int, c: float = 1.0, **kw: str) -> str:
            """Docstring."""
            return b * a

        original.custom = "kept"
        wrapped = instrument.timed(f"speedups.inspect.{path.name}")(original)
        assert wrapped.__wrapped__ is original
        assert inspect.unwrap(wrapped) is original
        assert inspect.signature(original) == inspect.signature(wrapped)
        assert ("original", original.__qualname__, "Docstring.", __name__, "kept") == (
            wrapped.__name__, wrapped.__qualname__, wrapped.__doc__, wrapped.__module__, wrapped.custom
        )
        assert original.__annotations__ == wrapped.__annotations__
        assert (False, False, False, True, True) == (
            inspect.iscoroutinefunction(wrapped),
            inspect.isgeneratorfunction(wrapped),
            inspect.isasyncgenfunction(wrapped),
            inspect.isroutine(wrapped),
            callable(wrapped),
        )
        wrapped.added = 1
        assert 1 == wrapped.__dict__["added"]
        assert weakref.ref(wrapped)() is wrapped
        assert copy.copy(wrapped) is wrapped
        assert copy.deepcopy(wrapped) is wrapped
        assert "original" in repr(wrapped)

    def test_methods_bind_like_functions(self, path):
        class Service:
            @instrument.timed(f"speedups.bind.{path.name}")
            def method(self, x):
                return (self, x)

            @instrument.counted(f"speedups.bind.cls.{path.name}")
            @classmethod
            def klass(cls):
                return cls

        s = Service()
        bound = s.method
        assert inspect.ismethod(bound)
        assert bound.__self__ is s
        assert bound.__func__ is Service.__dict__["method"]
        assert Service.method is Service.__dict__["method"]
        assert (s, 1) == bound(1) == s.method(1) == Service.method(s, 1)
        assert Service is Service.klass() is s.klass()
        assert inspect.signature(bound) == inspect.signature(lambda x: None)

    def test_pickled_by_reference(self, path):
        """A module-level decorated function pickles as functions do: by its qualified name."""
        assert pickle.loads(pickle.dumps(module_level)) is module_level

    def test_the_c_wrapper_is_a_c_callable_not_a_python_function(self):
        """On the C path the wrapper is an `instrument._fast.FunctionWrapper` (as `functools.partial`
        is its own type): `inspect.isfunction` says False; everything above holds."""
        fast = need_c_path()
        wrapped = instrument.timed("speedups.type")(lambda: 1)
        assert type(wrapped) is fast.FunctionWrapper
        assert not inspect.isfunction(wrapped)

    def test_the_wrapper_holds_no_reference_cycle_it_cannot_collect(self, path):
        def f():
            return 1

        wrapped = instrument.timed(f"speedups.gc.{path.name}")(f)
        wrapped.self_reference = wrapped
        ref = weakref.ref(wrapped)
        del wrapped
        gc.collect()
        assert ref() is None


def top_level(x):
    return x


class TestThreadsShareNoReferenceCount:
    """Free-threaded CPython: two threads recording at one call site, or through one decorated
    function, touch no object whose reference count both change (tests/benchmarks/bench_threads.py
    measures what that is worth)."""

    def test_a_wrapper_is_reference_counted_as_the_function_it_wraps(self):
        """3.13t makes top-level functions immortal once a second thread starts; their wrappers too.
        A nested function's wrapper is collected as before (TestWrapper)."""
        need_c_path()
        if not sysconfig.get_config_var("Py_GIL_DISABLED") or sys.version_info[:2] != (3, 13):
            pytest.skip("only 3.13t immortalizes top-level functions")
        wrapped = instrument.timed("speedups.ft.top")(top_level)
        thread = threading.Thread(target=wrapped, args=(1,))
        thread.start()
        thread.join()
        assert sys.getrefcount(top_level) == sys.getrefcount(wrapped) == 2**32 - 1

    def test_after_a_fork_a_known_call_site_records_into_the_childs_lists(self, path):
        """A call site this thread has recorded at before a fork (the C path remembers its list
        per thread on free-threaded builds) records into the child's own lists after it."""
        name = f"speedups.fork.{path.name}"
        for _ in range(3):
            path.count(name)
            path.record(name + ".r", 1.5)
        instrument.flush()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                with capture() as captured:
                    for _ in range(5):
                        path.count(name)
                        path.record(name + ".r", 2.5)
                os.write(write, f"{captured.value(name)} {captured.histogram(name + '.r').count}".encode())
            finally:
                os._exit(0)
        os.close(write)
        try:
            got = os.read(read, 100).decode()
        finally:
            os.close(read)
            os.waitpid(pid, 0)
        assert "5 5" == got


def _calls():
    """name -> one call through each C path, and the objects whose refcounts must not move.

    Each failing call raises a new exception: re-raising one object would grow its traceback.
    Each call lasts well over 256 ns, so that the durations are not CPython's cached small
    ints (a leaked duration then shows as a leaked block).
    """

    def ok(x):
        return sum(range(50)) and x

    def fails(x):
        sum(range(50))
        raise Boom(x)

    class Service:
        @instrument.timed("speedups.leak.method")
        def method(self, x):
            return ok(x)

    timed_ok = instrument.timed("speedups.leak.timed", tags={"k": "v"})(ok)
    timed_fails = instrument.timed("speedups.leak.timed", tags={"k": "v"})(fails)
    counted_ok = instrument.counted("speedups.leak.counted")(ok)
    counted_fails = instrument.counted("speedups.leak.counted")(fails)
    timer = instrument.timer("speedups.leak.timer.shared")
    service = Service()
    tags = {"route": "a"}

    def timer_ok(x):
        with instrument.timer("speedups.leak.timer", tags):
            return ok(x)

    def timer_fails(x):
        try:
            with timer:
                raise Boom(x)
        except Boom:
            return x

    def swallow(fn):
        def call(x):
            try:
                fn(x)
            except Boom:
                pass

        return call

    return {
        "@timed": timed_ok,
        "@timed raising": swallow(timed_fails),
        "@counted": counted_ok,
        "@counted raising": swallow(counted_fails),
        "method": service.method,
        "with timer()": timer_ok,
        "with timer raising": timer_fails,
        "count(tags)": lambda x: instrument.count("speedups.leak.count", 1, tags),
        "count(unit)": lambda x: instrument.count("speedups.leak.count.unit", x, unit="By"),
        "record()": lambda x: instrument.record("speedups.leak.record", 0.5, tags),
        "gauge()": lambda x: instrument.gauge("speedups.leak.gauge", x),
    }, (Boom, ok, fails, tags, timer, *_leak_series())


def _leak_series():
    """The series the calls above record into (a leaked reference to one shows in its refcount)."""
    declare = _metrics.declare_series
    return [
        declare("speedups.leak.timed", _metrics.TIMER, {"k": "v"}, "s"),
        declare("speedups.leak.counted", _metrics.COUNTER, None),
        declare("speedups.leak.method", _metrics.TIMER, None, "s"),
        declare("speedups.leak.timer", _metrics.TIMER, {"route": "a"}, "s"),
        declare("speedups.leak.count", _metrics.COUNTER, {"route": "a"}),
        declare("speedups.leak.record", _metrics.HISTOGRAM, {"route": "a"}),
        declare("speedups.leak.gauge", _metrics.GAUGE, None),
    ]


LEAK_CALLS = int(os.environ.get("INSTRUMENT_LEAK_CALLS", "200000"))
# Under AddressSanitizer (tox -e asan) freed memory sits in its quarantine and Python objects
# come from malloc: RSS and pymalloc's block count say nothing there; refcounts still do.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


class TestNoGrowth:
    """INSTRUMENT_LEAK_CALLS calls (tox -e py311: 10 million) through each C path leave no
    references and no memory behind: allocated blocks and refcounts return to where they were."""

    @pytest.mark.parametrize("which", list(_calls()[0]))
    def test_no_reference_or_memory_growth(self, which, exported):
        need_c_path()
        calls, watched = _calls()
        call = calls[which]
        chunk = min(LEAK_CALLS, 500_000)

        def run(n):
            for start in range(0, n, chunk):
                for i in range(start, min(n, start + chunk)):
                    call(i)
                instrument.flush(60.0)
                exported.clear()

        run(min(LEAK_CALLS, 50_000))  # warm up: series, error series, buffers, aggregation state
        gc.collect()
        blocks = sys.getallocatedblocks()
        refs = [sys.getrefcount(o) for o in watched]
        rss = _rss_mib()
        run(LEAK_CALLS)
        gc.collect()
        assert refs == [sys.getrefcount(o) for o in watched]
        grown = sys.getallocatedblocks() - blocks
        # A leak of one object per call would be LEAK_CALLS blocks; the pipeline's own
        # containers (batches, the registry) move by a few thousand between two flushes.
        assert grown < 5000, f"{grown} blocks more after {LEAK_CALLS} calls"
        if not UNDER_ASAN:
            assert _rss_mib() - rss < 16

    def test_no_growth_across_threads(self, exported):
        """Threads that record through the C path and exit leave nothing behind."""
        need_c_path()
        calls, _ = _calls()

        def work():
            for i in range(2000):
                for call in calls.values():
                    call(i)

        def round_():
            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            instrument.flush(60.0)
            exported.clear()

        round_()
        gc.collect()
        blocks = sys.getallocatedblocks()
        for _ in range(max(1, LEAK_CALLS // 200_000)):
            round_()
        gc.collect()
        assert sys.getallocatedblocks() - blocks < 5000


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_the_series_cache_is_shared_by_both_paths():
    """A call site first seen by one path is found by the other: one cache, one series."""
    need_c_path()
    _record.PURE["count"]("speedups.shared.cache", 1, {"a": "b"})
    series = _record._counters[("speedups.shared.cache", ("a", "b"))]
    instrument.count("speedups.shared.cache", 1, {"a": "b"})
    assert series is _metrics.declare_series("speedups.shared.cache", _metrics.COUNTER, {"a": "b"})
    assert [series] == [s for s in _record._counters.values() if s.metric.name == "speedups.shared.cache"]

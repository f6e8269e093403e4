"""Side-by-side benchmark: instrument against the bare call, the floor and its peers.

Run with ``tox -e bench`` (or ``python tests/benchmarks/bench.py``). Everything is
measured in one process and one run, rounds interleaved, and reported as medians and
ratios, because absolute times on shared machines move from run to run.

The floor is the least any timing decorator can do: a ``functools.wraps`` closure
with two ``perf_counter_ns()`` calls and a ``list.append``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from time import perf_counter_ns

import instrument
from instrument import _speedups
from instrument.exporters import Exporter
from instrument.exporters.memory import MemoryExporter


def bare(x):
    return x


_sink: list[int] = []


def floor(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = perf_counter_ns()
        result = fn(*args, **kwargs)
        _sink.append(perf_counter_ns() - t)
        return result

    return wrapper


def _pure_python():
    """The pure-Python recording functions, beside the C fast path when that is active."""
    from instrument import _record, _speedups, _timer

    fast = _speedups.fast

    def decorate(name, tags):
        _speedups.fast = None  # _decorate.wrap builds the Python wrapper while this is unset
        try:
            return instrument.timed(name, tags=tags)(bare)
        finally:
            _speedups.fast = fast

    return decorate, _timer.PURE_TIMER, _record.PURE["count"], _record.PURE["record"]


TAG = {"route": "a"}
PATHS = ("C", "Python") if instrument.__speedups__ else ("Python",)
FLOOR = "floor (wraps + 2 perf_counter_ns + append)"


def _instrument_candidates():
    """name -> callable for instrument's forms, on each path this build has."""
    pure_timed, pure_timer, pure_count, pure_record = _pure_python()
    forms = {}
    for path in PATHS:
        c = path == "C"
        timed = instrument.timed if c else None
        timer = instrument.timer if c else pure_timer
        count = instrument.count if c else pure_count
        record = instrument.record if c else pure_record
        suffix = "" if c else ".py"

        def with_timer(x, timer=timer, name=f"bench.timer{suffix}"):
            with timer(name, TAG):
                return x

        def count_plain(x, count=count, name=f"bench.count{suffix}"):
            count(name)
            return x

        def count_tagged(x, count=count, name=f"bench.count.tagged{suffix}"):
            count(name, 1, TAG)
            return x

        def record_value(x, record=record, name=f"bench.record{suffix}"):
            record(name, 1.5)
            return x

        decorated = timed(f"bench.timed{suffix}", tags=TAG)(bare) if c else pure_timed(f"bench.timed{suffix}", TAG)
        forms[f"@instrument.timed (static tag) [{path}]"] = decorated
        forms[f"with instrument.timer() (tag) [{path}]"] = with_timer
        forms[f"instrument.count() [{path}]"] = count_plain
        forms[f"instrument.count() (tag) [{path}]"] = count_tagged
        forms[f"instrument.record() [{path}]"] = record_value
    return forms


def _otel_candidates():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("bench")
    otel_histogram = meter.create_histogram("bench.otel.histogram", unit="s")
    otel_counter = meter.create_counter("bench.otel.counter")

    def otel_timed(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t = perf_counter_ns()
            result = fn(*args, **kwargs)
            otel_histogram.record((perf_counter_ns() - t) / 1e9, TAG)
            return result

        return wrapper

    def otel_add(x):
        otel_counter.add(1, TAG)
        return x

    return {"OTel SDK histogram.record (timed, tag)": otel_timed(bare), "OTel SDK counter.add (tag)": otel_add}


def _prometheus_candidates():
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    prom_histogram = Histogram("bench_prom_seconds", "h", ["route"], registry=registry).labels("a")
    prom_counter = Counter("bench_prom", "c", registry=registry)

    def prom_inc(x):
        prom_counter.inc()
        return x

    return {
        "prometheus_client Histogram.time() (label)": prom_histogram.time()(bare),
        "prometheus_client Counter.inc()": prom_inc,
    }


def _statsd_candidates():
    from statsd import StatsClient

    statsd_client = StatsClient("127.0.0.1", 8125)
    return {"statsd @timer (UDP send)": statsd_client.timer("bench.statsd")(bare)}


GROUPS = [
    lambda: {"bare call": bare, FLOOR: floor(bare)},
    _instrument_candidates,
    _otel_candidates,
    _prometheus_candidates,
    _statsd_candidates,
]


def build_candidates():
    """name -> one-argument callable; each does what its row says around `bare`."""
    candidates = {}
    for group in GROUPS:
        candidates.update(group())
    return candidates


def run_loop(fn, n):
    start = perf_counter_ns()
    for i in range(n):
        fn(i)
    return (perf_counter_ns() - start) / n


def per_call_table(rounds, n):
    candidates = build_candidates()
    samples = {name: [] for name in candidates}
    for fn in candidates.values():  # warm up caches, series and buffers
        run_loop(fn, 2000)
    # Each loop starts with empty buffers and an idle collector, so this table is the
    # cost on the calling thread; aggregation is measured by end_to_end().
    for _ in range(rounds):
        for name, fn in candidates.items():
            _sink.clear()
            instrument.flush(5.0)
            samples[name].append(run_loop(fn, n))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["bare call"]
    floor_overhead = medians["floor (wraps + 2 perf_counter_ns + append)"] - base
    print(f"\nPer call, on the calling thread: median of {rounds} rounds x {n} calls, Python {sys.version.split()[0]}")
    print(f"{'':46} {'ns/call':>9} {'overhead':>9} {'/ floor':>8}")
    for name, median in medians.items():
        overhead = median - base
        print(f"{name:46} {median:9.0f} {overhead:9.0f} {overhead / floor_overhead:8.2f}")
    return medians, floor_overhead


def threads_ratio(calls, rounds):
    """Aggregate throughput of 4 threads over one thread, for @timed and for the floor.

    Under the GIL the best possible is about 1.0; the floor's ratio in the same run
    shows how much of any shortfall is the machine's thread switching, not contention.
    """
    candidates = {"@instrument.timed": instrument.timed("bench.threads")(bare), "floor": floor(bare)}
    ratios = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            run_loop(fn, calls)
            single = calls / (time.perf_counter() - start)
            threads = [threading.Thread(target=run_loop, args=(fn, calls)) for _ in range(4)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ratios[name].append(4 * calls / (time.perf_counter() - start) / single)
            _sink.clear()
            instrument.flush(5.0)
    medians = {name: statistics.median(values) for name, values in ratios.items()}
    print(f"\n4 threads vs 1 thread, aggregate calls/s (median of {rounds}): "
          + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in medians.items()))
    return medians["@instrument.timed"]


def end_to_end(n, floor_overhead):
    memory = MemoryExporter()
    instrument.configure(exporters=[memory], interval=3600.0)
    fn = instrument.timed("bench.e2e")(bare)
    samples = []
    for _ in range(5):
        memory.clear()
        gc.collect()
        bare_ns = run_loop(bare, n)
        start = perf_counter_ns()
        run_loop(fn, n)
        assert instrument.flush(30.0)
        total = (perf_counter_ns() - start) / n
        samples.append(total - bare_ns)
        exported = sum(p.histogram.count for p in memory.points("bench.e2e"))
        assert exported == n, (exported, n)
    per_record = statistics.median(samples)
    print(f"\nEnd to end: {n:,} @timed calls, then flush() into the memory exporter: "
          f"{per_record:.0f} ns overhead per record = {per_record / floor_overhead:.2f}x the floor's overhead")
    return per_record / floor_overhead


class Stalled(Exporter):
    name = "stalled"

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def export(self, batch):
        self.release.wait()


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stalled_exporter(n):
    stalled = Stalled()
    memory = MemoryExporter()
    instrument.configure(exporters=[stalled, memory], interval=0.5)
    fn = instrument.timed("bench.stalled")(bare)
    run_loop(fn, 10_000)
    instrument.flush(0.1)
    gc.collect()
    before = rss_mib()
    peak = before
    chunk = 100_000
    for _ in range(n // chunk):
        run_loop(fn, chunk)
        peak = max(peak, rss_mib())
    stalled.release.set()
    instrument.flush(30.0)
    recorded = sum(p.histogram.count for p in memory.points("bench.stalled"))
    dropped = {}
    for point in memory.points("instrument.records.dropped"):
        reason = point.tags.get("reason")
        dropped[reason] = dropped.get(reason, 0) + point.value
    print(f"\nExporter stalled: {n:,} @timed calls; RSS {before:.1f} -> peak {peak:.1f} MiB "
          f"(+{peak - before:.1f} MiB); aggregated {recorded - 10_000:,}; dropped records by reason: {dropped}")
    instrument.configure(exporters=[], interval=10.0)
    return peak - before


def import_times(rounds):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_") and k != "PYTHONDONTWRITEBYTECODE"}

    def once(module):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             env=env, capture_output=True, text=True, check=True).stderr
        line = next(line for line in reversed(out.splitlines()) if line.rstrip().endswith(f"| {module}"))
        return int(line.split("|")[1]) / 1000

    modules = ["instrument", "opentelemetry.sdk.metrics", "prometheus_client", "wrapt", "requests"]
    for module in modules:
        once(module)  # writes bytecode caches
    samples = {m: [] for m in modules}
    for _ in range(rounds):
        for module in modules:
            samples[module].append(once(module))
    medians = {m: statistics.median(v) for m, v in samples.items()}
    print(f"\nImport time (python -X importtime, cumulative, median of {rounds}):")
    for module, ms in medians.items():
        print(f"  {module:28} {ms:7.1f} ms")
    ratio = medians["instrument"] / medians["opentelemetry.sdk.metrics"]
    print(f"  instrument / opentelemetry.sdk.metrics = {ratio:.2f}")
    return ratio


CALLGRIND_LOW, CALLGRIND_HIGH = 20_000, 220_000


def callgrind_child(name, n):
    """Run *n* calls of one candidate (under callgrind, started by `callgrind_table`).

    One thread only, so that the count is the calling thread's and repeatable: the collector
    is held back (records stay in the buffers) and the threshold of the slow path raised
    above *n*, so every record takes the hot path.
    """
    from instrument import _record
    from instrument._runtime import RUNTIME

    RUNTIME.hold(lambda: None)
    _record.set_state(enabled=True, slow_at=10 * n, on_start=lambda: None)
    candidates = {**GROUPS[0](), **GROUPS[1]()}
    if name not in candidates:
        candidates.update(_prometheus_candidates())
    fn = candidates[name]
    run_loop(fn, 2000)
    run_loop(fn, n)


def callgrind_table():
    """Instructions per call on the calling thread, counted by callgrind: repeatable where wall
    times are noisy. Each candidate runs CALLGRIND_LOW and CALLGRIND_HIGH calls in two
    processes (one thread each, PYTHONHASHSEED=0); the difference over the extra calls is the
    cost of one call (start-up and warm-up cancel)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("\nvalgrind is not installed: no instruction counts")
        return None
    names = ["bare call", FLOOR, *(n for n in _instrument_candidates()), "prometheus_client Counter.inc()"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    per_call = {}
    for name in names:
        totals = []
        for n in (CALLGRIND_LOW, CALLGRIND_HIGH):
            command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
                       sys.executable, __file__, "--callgrind-child", name, str(n)]
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stderr
            totals.append(int(out.split("Collected :")[1].split()[0]))
        per_call[name] = (totals[1] - totals[0]) / (CALLGRIND_HIGH - CALLGRIND_LOW)
    base = per_call["bare call"]
    floor_overhead = per_call[FLOOR] - base
    print(f"\nInstructions per call on the calling thread (callgrind, {CALLGRIND_HIGH:,} - {CALLGRIND_LOW:,} calls)")
    print(f"{'':46} {'instr':>9} {'overhead':>9} {'/ floor':>8}")
    for name, count in per_call.items():
        print(f"{name:46} {count:9.0f} {count - base:9.0f} {(count - base) / floor_overhead:8.2f}")
    return {name: (count - base) for name, count in per_call.items()}, floor_overhead


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and records")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions per call with callgrind")
    parser.add_argument("--callgrind-child", nargs=2, metavar=("NAME", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind_child:
        callgrind_child(args.callgrind_child[0], int(args.callgrind_child[1]))
        return
    quick = args.quick
    print(f"instrument.__speedups__ = {instrument.__speedups__} ({_speedups.REASON}); paths shown: {', '.join(PATHS)}")
    instrument.configure(exporters=[], interval=10.0)
    medians, floor_overhead = per_call_table(rounds=7 if quick else 25, n=10_000 if quick else 20_000)
    base = medians["bare call"]
    prom = medians["prometheus_client Counter.inc()"] - base

    def ratio(row, to=floor_overhead):
        return (medians[row] - base) / to

    threads = threads_ratio(100_000 if quick else 200_000, 5 if quick else 11)
    e2e = end_to_end(200_000 if quick else 1_000_000, floor_overhead)
    rss = stalled_exporter(1_000_000 if quick else 10_000_000)
    imports = import_times(3 if quick else 7)
    counted = callgrind_table() if args.callgrind else None

    def verdict(ok):
        return "meets" if ok else "MISSES"

    def line(label, path, value, limit, at_most=True, fmt="6.2f"):
        if limit is None:  # the pure-Python path has no target for this form: shown for comparison
            print(f"  {label:38} {path:7} {value:{fmt}}")
            return
        ok = value <= limit if at_most else value >= limit
        print(f"  {label:38} {path:7} {value:{fmt}}  {'<=' if at_most else '>='} {limit:<5} {verdict(ok)}")

    path = PATHS[0]
    print(f"\nTargets (issue #16 for the C path, issue #2 for the pure-Python path), {path} path first:")
    for p in PATHS:
        c = p == "C"
        line("@timed overhead / floor overhead", p, ratio(f"@instrument.timed (static tag) [{p}]"), 0.5 if c else 1.5)
        line("with timer() / floor overhead", p, ratio(f"with instrument.timer() (tag) [{p}]"), 1.0 if c else None)
        line("count(tags) / prometheus Counter.inc()", p, ratio(f"instrument.count() (tag) [{p}]", prom),
             0.5 if c else None)
        line("count() / prometheus Counter.inc()", p, ratio(f"instrument.count() [{p}]", prom), 1.0)
        line("record() / floor overhead", p, ratio(f"instrument.record() [{p}]"), 1.0 if c else None)
    line("end to end / floor overhead", path, e2e, 1.5 if path == "C" else 3.0)
    line("4 threads / 1 thread throughput", path, threads, 0.9, at_most=False)
    line("RSS growth, exporter stalled (MiB)", path, rss, 64, fmt="6.1f")
    line("import / OTel SDK metrics import", path, imports, 0.5)
    if counted is not None:
        overheads, floor_instructions = counted
        print("\nThe same by instruction counts (callgrind):")
        for p in PATHS:
            c = p == "C"
            prom_i = overheads["prometheus_client Counter.inc()"]
            line("@timed / floor", p, overheads[f"@instrument.timed (static tag) [{p}]"] / floor_instructions,
                 0.5 if c else 1.5)
            line("with timer() / floor", p, overheads[f"with instrument.timer() (tag) [{p}]"] / floor_instructions,
                 1.0 if c else None)
            line("count(tags) / prometheus Counter.inc()", p, overheads[f"instrument.count() (tag) [{p}]"] / prom_i,
                 0.5 if c else None)
            line("record() / floor", p, overheads[f"instrument.record() [{p}]"] / floor_instructions,
                 1.0 if c else None)


if __name__ == "__main__":
    main()

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
import statistics
import subprocess
import sys
import threading
import time
from time import perf_counter_ns

import instrument
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


def build_candidates():
    """name -> one-argument callable; each does what its row says around `bare`."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from statsd import StatsClient

    tag = {"route": "a"}
    candidates = {"bare call": bare, "floor (wraps + 2 perf_counter_ns + append)": floor(bare)}

    candidates["@instrument.timed (static tag)"] = instrument.timed("bench.timed", tags=tag)(bare)

    def with_timer(x):
        with instrument.timer("bench.timer", tags=tag):
            return x

    def count_plain(x):
        instrument.count("bench.count")
        return x

    def count_tagged(x):
        instrument.count("bench.count.tagged", 1, tag)
        return x

    candidates["with instrument.timer() (tag)"] = with_timer
    candidates["instrument.count()"] = count_plain
    candidates["instrument.count() (tag)"] = count_tagged

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("bench")
    otel_histogram = meter.create_histogram("bench.otel.histogram", unit="s")
    otel_counter = meter.create_counter("bench.otel.counter")

    def otel_timed(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t = perf_counter_ns()
            result = fn(*args, **kwargs)
            otel_histogram.record((perf_counter_ns() - t) / 1e9, tag)
            return result

        return wrapper

    def otel_add(x):
        otel_counter.add(1, tag)
        return x

    candidates["OTel SDK histogram.record (timed, tag)"] = otel_timed(bare)
    candidates["OTel SDK counter.add (tag)"] = otel_add

    registry = CollectorRegistry()
    prom_histogram = Histogram("bench_prom_seconds", "h", ["route"], registry=registry).labels("a")
    prom_counter = Counter("bench_prom", "c", registry=registry)

    def prom_inc(x):
        prom_counter.inc()
        return x

    candidates["prometheus_client Histogram.time() (label)"] = prom_histogram.time()(bare)
    candidates["prometheus_client Counter.inc()"] = prom_inc

    statsd_client = StatsClient("127.0.0.1", 8125)
    candidates["statsd @timer (UDP send)"] = statsd_client.timer("bench.statsd")(bare)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and records")
    args = parser.parse_args()
    quick = args.quick
    instrument.configure(exporters=[], interval=10.0)
    medians, floor_overhead = per_call_table(rounds=7 if quick else 25, n=10_000 if quick else 20_000)
    base = medians["bare call"]
    timed_ratio = (medians["@instrument.timed (static tag)"] - base) / floor_overhead
    count_vs_prom = (medians["instrument.count()"] - base) / (medians["prometheus_client Counter.inc()"] - base)
    threads = threads_ratio(100_000 if quick else 200_000, 5 if quick else 11)
    e2e = end_to_end(200_000 if quick else 1_000_000, floor_overhead)
    rss = stalled_exporter(1_000_000 if quick else 10_000_000)
    imports = import_times(3 if quick else 7)

    def verdict(ok):
        return "meets" if ok else "MISSES"

    print("\nTargets (issue #2):")
    print(f"  @timed overhead / floor overhead      {timed_ratio:6.2f}  <= 1.5   {verdict(timed_ratio <= 1.5)}")
    print(f"  count() / prometheus Counter.inc()    {count_vs_prom:6.2f}  <= 1.0   {verdict(count_vs_prom <= 1.0)}")
    print(f"  end to end / floor overhead           {e2e:6.2f}  <= 3.0   {verdict(e2e <= 3.0)}")
    print(f"  4 threads / 1 thread throughput       {threads:6.2f}  >= 0.9   {verdict(threads >= 0.9)}")
    print(f"  RSS growth, exporter stalled (MiB)    {rss:6.1f}  <= 64    {verdict(rss <= 64)}")
    print(f"  import / OTel SDK metrics import      {imports:6.2f}  <= 0.5   {verdict(imports <= 0.5)}")


if __name__ == "__main__":
    main()

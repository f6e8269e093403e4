"""DB-API overhead: ``cursor.execute("SELECT 1")`` on sqlite3 ``:memory:``, side by side.

Run with ``python tests/benchmarks/bench_dbapi.py`` (``--quick`` for fewer rounds).
Three cursors are measured in one process, rounds interleaved, as medians of ns/call:

- bare: the real sqlite3 cursor;
- instrument: ``instrument.auto.install(include=["sqlite3"])`` and ``sqlite3.connect``
  (a subclass of sqlite3's Cursor, made through its factory hook), recording
  ``db.client.operation.duration`` into the per-thread buffers (exporter: the in-memory
  one, flushed between rounds, so the calling thread's cost is measured);
- OpenTelemetry: ``SQLite3Instrumentor().instrument(tracer_provider=TracerProvider())``
  and ``sqlite3.connect``: the SDK's TracerProvider with its default sampler
  (ParentBased(ALWAYS_ON)) and no span processor or exporter, so every span is created,
  filled with attributes and ended, then dropped; no MeterProvider is configured, so
  its metric histograms are the API's no-op ones.

The issue's target: instrument's overhead at most 1/3 of OpenTelemetry's. Not a
pass/fail test; it prints a table.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import sys
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import instrument
import instrument.auto
from instrument.exporters.memory import MemoryExporter
from instrument.integrations import dbapi

STATEMENT = "SELECT 1"


def cursors() -> dict[str, Any]:
    """name -> a cursor on its own :memory: database; each connect is made while only
    that instrumentation is installed, so every cursor carries exactly one."""
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.trace import TracerProvider

    found = {"bare sqlite3": sqlite3.connect(":memory:").cursor()}

    instrument.auto.install(include=["sqlite3"])
    found["instrument"] = sqlite3.connect(":memory:").cursor()
    instrument.auto.uninstall(["sqlite3"])

    instrumentor = SQLite3Instrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider())
    found["OpenTelemetry sqlite3"] = sqlite3.connect(":memory:").cursor()
    instrumentor.uninstrument()

    assert type(found["bare sqlite3"]) is sqlite3.Cursor
    assert dbapi.instrumented(found["instrument"]) and isinstance(found["instrument"], sqlite3.Cursor)
    assert type(found["OpenTelemetry sqlite3"]).__module__.startswith("opentelemetry")
    return found


def run_loop(execute: Callable[[str], Any], n: int) -> float:
    """Mean ns per ``execute(STATEMENT)`` over *n* calls."""
    statement = STATEMENT
    start = perf_counter_ns()
    for _ in range(n):
        execute(statement)
    return (perf_counter_ns() - start) / n


def measure(rounds: int, n: int) -> dict[str, float]:
    """Median ns/call per cursor, rounds interleaved."""
    executes = {name: cursor.execute for name, cursor in cursors().items()}
    for execute in executes.values():  # warm caches, series and buffers
        run_loop(execute, 2_000)
    samples: dict[str, list[float]] = {name: [] for name in executes}
    for _ in range(rounds):
        for name, execute in executes.items():
            instrument.flush(5.0)  # each loop starts with empty buffers and an idle collector
            gc.collect()
            samples[name].append(run_loop(execute, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    args = parser.parse_args()
    rounds, n = (7, 10_000) if args.quick else (25, 20_000)
    memory = MemoryExporter()
    instrument.configure(exporters=[memory], interval=3600.0)
    medians = measure(rounds, n)
    base = medians["bare sqlite3"]
    ours = medians["instrument"] - base
    otel = medians["OpenTelemetry sqlite3"] - base
    print(f'\ncursor.execute("{STATEMENT}") on sqlite3 :memory:, median of {rounds} rounds x {n:,} calls, '
          f"Python {sys.version.split()[0]}")
    print(f"{'':24} {'ns/call':>9} {'overhead':>9}")
    for name, median in medians.items():
        print(f"{name:24} {median:9.0f} {median - base:9.0f}")
    ratio = ours / otel
    verdict = "meets" if ratio <= 1 / 3 else "MISSES"
    print(f"\ninstrument overhead / OpenTelemetry overhead = {ratio:.3f}  (target <= 0.333: {verdict})")
    instrument.flush(5.0)
    recorded = sum(p.histogram.count for p in memory.points("db.client.operation.duration"))
    print(f"instrument recorded {recorded:,} statements")
    instrument.configure(exporters=[], interval=10.0)


if __name__ == "__main__":
    main()

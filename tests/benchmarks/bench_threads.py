"""How recording scales with threads: aggregate calls/s of 2 threads over 1 thread.

Under the GIL the best possible is about 1.0. On free-threaded CPython (``tox -e
bench-ft``, Python 3.13t) two threads on two cores can approach 2.0, unless they contend
on something shared: a reference count, a closure cell, a dict, a lock. The floors in
the same run show what the machine allows: the timing logic as a closure (what a
decorator is) and as a module-level function (which free-threaded CPython gives deferred
reference counting; a nested function never gets it).

Run with ``python tests/benchmarks/bench_threads.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from time import perf_counter_ns

import instrument


def bare(x):
    return x


def floor_function(x, sink):
    """The floor's work as a module-level function, the sink passed in."""
    t = perf_counter_ns()
    result = bare(x)
    sink.append(perf_counter_ns() - t)
    return result


def floor_closure(fn):
    """The floor as a decorator makes it: a closure over a per-thread sink."""
    sink: list[int] = []

    def wrapper(x):
        t = perf_counter_ns()
        result = fn(x)
        sink.append(perf_counter_ns() - t)
        return result

    return wrapper


def candidates() -> dict[str, Callable[[], Callable[[int], object]]]:
    """name -> a factory called once per thread, returning what that thread calls."""
    timed = instrument.timed("bench.threads.timed")(bare)

    def count(x):
        instrument.count("bench.threads.count")
        return x

    def count_tagged(x):
        instrument.count("bench.threads.count.tagged", tags={"route": "a"})
        return x

    def record(x):
        instrument.record("bench.threads.record", 2.5)
        return x

    from prometheus_client import CollectorRegistry, Counter

    prom = Counter("bench_threads_total", "calls", registry=CollectorRegistry())

    def prom_inc(x):
        prom.inc()
        return x

    def function_floor() -> Callable[[int], object]:
        sink: list[int] = []
        return lambda x: floor_function(x, sink)

    return {
        "floor (module-level function)": function_floor,
        "floor (closure, as a decorator)": lambda: floor_closure(bare),
        "@instrument.timed": lambda: timed,
        "instrument.count()": lambda: count,
        "instrument.count(tags=...)": lambda: count_tagged,
        "instrument.record()": lambda: record,
        "prometheus_client Counter.inc()": lambda: prom_inc,
    }


def loop(fn: Callable[[int], object], n: int, start: threading.Barrier) -> None:
    start.wait()
    for i in range(n):
        fn(i)


def rate(make: Callable[[], Callable[[int], object]], threads: int, n: int) -> float:
    """Aggregate calls per second of *threads* threads making *n* calls each."""
    barrier = threading.Barrier(threads + 1)
    workers = [threading.Thread(target=loop, args=(make(), n, barrier)) for _ in range(threads)]
    for w in workers:
        w.start()
    began = time.perf_counter()
    barrier.wait()
    for w in workers:
        w.join()
    return threads * n / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    args = parser.parse_args()
    rounds, n = (5, 100_000) if args.quick else (11, 300_000)
    instrument.configure(exporters=[], interval=1.0)
    made = candidates()
    ratios: dict[str, list[float]] = {name: [] for name in made}
    for make in made.values():
        rate(make, 1, 2000)  # warm up series and buffers
    for _ in range(rounds):
        for name, make in made.items():
            one = rate(make, 1, n)
            two = rate(make, 2, n)
            ratios[name].append(two / one)
    gil = "free-threaded, GIL off" if not getattr(sys, "_is_gil_enabled", lambda: True)() else "GIL"
    if sysconfig.get_config_var("Py_GIL_DISABLED") and gil == "GIL":
        gil = "free-threaded build, GIL turned on"
    print(f"\n2 threads / 1 thread, aggregate calls/s: median of {rounds} rounds x {n} calls per thread, "
          f"Python {sys.version.split()[0]} ({gil})")
    floor = statistics.median(ratios["floor (module-level function)"])
    for name, values in ratios.items():
        median = statistics.median(values)
        print(f"  {name:34} {median:5.2f}x   / floor {median / floor:5.2f}")
    if gil == "free-threaded, GIL off":
        print("\nTargets (issue #17), free-threaded:")
        for name in ("@instrument.timed", "instrument.count()", "instrument.record()"):
            median = statistics.median(ratios[name])
            print(f"  {name:34} {median:5.2f}x  >= 1.7   {'meets' if median >= 1.7 else 'MISSES'}")


if __name__ == "__main__":
    main()

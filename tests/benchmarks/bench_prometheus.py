"""What live scrapes cost: 4 forked workers, 2,000 series, the Prometheus endpoint.

Run with ``python tests/benchmarks/bench_prometheus.py`` (also in ``tox -e bench``).
Each round starts an endpoint (``instrument.configure(exporters=["prometheus"])``) and
forks 4 workers that touch every one of 2,000 series (1,000 histograms, 1,000
counters) every 0.1 s for a few seconds, the worst case: every series changes between
two scrapes. A scraper asks once a second (Prometheus' shortest usual
``scrape_interval``). Rounds alternate ``live_interval`` 0.1 s (live scrapes: each
scrape asks the workers) and 0 (batches every ``interval``, as before), and report,
side by side:

- the workers' CPU (user + system) per second of the run, per worker;
- with live scrapes, the time a scrape takes while the workers record (the second half
  of the once-a-second ones) and, by format, once they are done, and its size (without
  live scrapes the endpoint has nothing to show before the first interval).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import threading
import time
import urllib.request

import instrument
from instrument.exporters.prometheus import PrometheusExporter

WORKERS = 4
SERIES = 1000  # of each kind: 2,000 series in all
ACCEPT = {
    "text": "text/plain;version=0.0.4",
    "openmetrics": "application/openmetrics-text;version=1.0.0",
    "protobuf": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
}


def worker(seconds: float, report: int) -> None:
    rng = random.Random(os.getpid())
    routes = [{"route": f"/r{i}"} for i in range(SERIES)]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        for tags in routes:
            instrument.record("bench.latency", rng.lognormvariate(-3, 0.5), tags=tags, unit="s")
            instrument.count("bench.requests", 1, tags=tags)
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    instrument.flush(10.0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    os.write(report, f"{usage.ru_utime + usage.ru_stime}\n".encode())


def scrape(url: str, accept: str) -> tuple[float, int]:
    start = time.perf_counter()
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        size = len(response.read())
    return time.perf_counter() - start, size


def _every_second(url: str, stop: threading.Event, took: list[float]) -> None:
    """Scrape (protobuf) once a second until *stop*; the time each took into *took*."""
    while not stop.wait(1.0):
        took.append(scrape(url, ACCEPT["protobuf"])[0])


def _scrapes(url: str, found: dict[str, float], when: str) -> None:
    """The median time of 5 scrapes in each format, and the size, into *found*."""
    for name, accept in ACCEPT.items():
        times, size = [], 0
        for _ in range(5):
            took, size = scrape(url, accept)
            times.append(took)
        found[f"scrape {name} ms, {when}"] = statistics.median(times) * 1000
        if when == "idle":
            found[f"scrape {name} KiB"] = size / 1024


def one_round(live: float, seconds: float) -> dict[str, float]:
    exporter = PrometheusExporter(address=("127.0.0.1", 0))
    instrument.configure(exporters=[exporter], interval=10.0, live_interval=live)
    read, write = os.pipe()
    children = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            try:
                worker(seconds, write)
            finally:
                os._exit(0)
        children.append(pid)
    stop = threading.Event()
    took: list[float] = []
    scraper = threading.Thread(target=_every_second, args=(exporter.url, stop, took))
    scraper.start()
    for pid in children:
        os.waitpid(pid, 0)
    stop.set()
    scraper.join()
    found: dict[str, float] = {}
    if live:
        found["scrape protobuf ms, under load"] = statistics.median(took[len(took) // 2:]) * 1000
    if live:
        _scrapes(exporter.url, found, "idle")
    os.close(write)
    with os.fdopen(read) as lines:
        cpu = sum(float(line) for line in lines)
    found["workers CPU %"] = 100 * cpu / seconds / WORKERS
    instrument.configure(exporters=[], live_interval=0.1)
    exporter.shutdown()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    results: dict[float, list[dict[str, float]]] = {0.1: [], 0.0: []}
    for _ in range(args.rounds):
        for live in results:
            results[live].append(one_round(live, args.seconds))
    print(f"{WORKERS} workers, {2 * SERIES} series, every series touched every 0.1 s, a scrape a second; "
          f"medians of {args.rounds} rounds")
    print(f"| {'':34} | live_interval 0.1 s | live_interval 0 (every 10 s) |")
    print(f"|{'-' * 36}|{'-' * 21}|{'-' * 30}|")
    for key in results[0.1][0]:
        live = statistics.median(r[key] for r in results[0.1])
        batch = f"{statistics.median(r[key] for r in results[0.0]):28.1f}" if key in results[0.0][0] else f"{'':28}"
        print(f"| {key:34} | {live:19.1f} | {batch} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Overhead per HTTP request: instrument's integrations against opentelemetry-instrumentation-requests.

A keep-alive HTTP/1.1 server runs in a child process on 127.0.0.1. Each measurement is
a fresh client process that warms up, then sends GETs with one requests.Session in one
of three modes: bare; instrument's http_client, urllib3 and requests integrations; or
OpenTelemetry's RequestsInstrumentor with a MeterProvider and no tracer provider
(metrics only). Modes run in separate processes, rounds interleaved, because a mode
leaves state behind (OpenTelemetry's garbage and contexts slowed whatever ran after it
in the same process). The cost is the calling thread's CPU time per request: wall time
on a loopback round trip is dominated by the server and the scheduler, whose noise is
larger than either overhead. (instrument's aggregation runs on its background thread,
about 0.3 us per request; OpenTelemetry aggregates on the calling thread.)

Even so, CPU time per request differs by +-50 us from one process to the next on
these machines (memory layout), as much as instrument's overhead. So when valgrind
is installed, the same children also run under callgrind, which counts instructions:
repeatable to the instruction. Two runs of 100 and 300 requests per mode; their
difference divided by 200 is the cost of one request, start-up and warm-up cancelled.
The target is judged on those counts.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from time import thread_time_ns

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = f"""
import sys
sys.path.insert(0, {ROOT!r})
from tests.integrations.http_server import Server
server = Server()
print(server.port, flush=True)
sys.stdin.read()
"""
MODES = ("bare requests", "instrument", "opentelemetry-instrumentation-requests")


def child(mode: str, port: int, requests_count: int) -> None:
    """One measurement: print the calling thread's CPU ns per request in *mode*."""
    import requests

    if mode == "instrument":
        import instrument
        import instrument.auto

        instrument.configure(exporters=[], interval=3600.0)
        instrument.auto.install(include=["http_client", "urllib3", "requests"])
    elif mode.startswith("opentelemetry"):
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        RequestsInstrumentor().instrument(meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))
    session = requests.Session()
    url = f"http://127.0.0.1:{port}/ok"
    for _ in range(200):
        session.get(url)
    start = thread_time_ns()
    for _ in range(requests_count):
        session.get(url)
    print((thread_time_ns() - start) / requests_count)


def instructions(mode: str, port: int, requests_count: int) -> int:
    """Instructions a child in *mode* executes in all (callgrind)."""
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "callgrind.out")
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__, "--child", mode,
             str(port), str(requests_count)],
            capture_output=True, text=True, check=True,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main(rounds: int = 15, requests_count: int = 500) -> float:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    counted: dict[str, float] = {}
    try:
        port = int(server.stdout.readline())
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(rounds):
            for mode in MODES:
                out = subprocess.run([sys.executable, __file__, "--child", mode, str(port), str(requests_count)],
                                     capture_output=True, text=True, check=True).stdout
                samples[mode].append(float(out.strip().splitlines()[-1]))
        if shutil.which("valgrind"):
            for mode in MODES:
                counted[mode] = (instructions(mode, port, 300) - instructions(mode, port, 100)) / 200
    finally:
        server.stdin.close()
        server.wait(10)
    medians = {mode: statistics.median(values) for mode, values in samples.items()}
    base = medians["bare requests"]
    print(f"\nHTTP client, requests.Session GET to a local keep-alive server, median of {rounds} processes x "
          f"{requests_count} requests:")
    print(f"{'':42} {'CPU us/req':>11} {'overhead us':>12}")
    for name, ns in medians.items():
        print(f"{name:42} {ns / 1000:11.1f} {(ns - base) / 1000:12.2f}")
    ratio = (medians["instrument"] - base) / (medians["opentelemetry-instrumentation-requests"] - base)
    print(f"instrument's overhead = {ratio:.2f}x OpenTelemetry's (CPU time; noisy, see above)")
    if not counted:
        print("valgrind is not installed: no instruction counts")
        return ratio
    bare = counted["bare requests"]
    print(f"\n{'':42} {'instr/req':>11} {'overhead':>12}")
    for name, count in counted.items():
        print(f"{name:42} {count:11.0f} {count - bare:12.0f}")
    ratio = (counted["instrument"] - bare) / (counted["opentelemetry-instrumentation-requests"] - bare)
    print(f"instrument's overhead = {ratio:.2f}x OpenTelemetry's in instructions (target <= 0.33)")
    return ratio


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()

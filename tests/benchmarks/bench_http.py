"""Overhead per HTTP request: instrument's integrations against opentelemetry-instrumentation-requests.

A keep-alive HTTP/1.1 server runs in a child process on 127.0.0.1; one requests.Session
sends GETs to it. Rounds interleave: bare, instrument (installed for the round, then
uninstalled), OpenTelemetry's RequestsInstrumentor with a MeterProvider and no tracer
provider (metrics only), likewise. The cost is the client process's CPU time per request
(all its threads, so aggregation is included): wall time on a loopback round trip is
dominated by the server and the scheduler, whose noise is larger than either overhead.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from time import process_time_ns

SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.integrations.http_server import Server
server = Server()
print(server.port, flush=True)
sys.stdin.read()
"""


def main(rounds: int = 25, requests_per_round: int = 300) -> float:
    import os

    import requests
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import instrument
    import instrument.auto

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-c", SERVER.format(root=root)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        url = f"http://127.0.0.1:{port}/ok"
        session = requests.Session()
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        otel = RequestsInstrumentor()
        instrument.configure(exporters=[], interval=3600.0)

        def loop() -> float:
            start = process_time_ns()
            for _ in range(requests_per_round):
                session.get(url)
            return (process_time_ns() - start) / requests_per_round

        def ours() -> float:
            instrument.auto.install(include=["http_client", "urllib3", "requests"])
            try:
                return loop()
            finally:
                instrument.auto.uninstall(["http_client", "urllib3", "requests"])
                instrument.flush(5.0)

        def theirs() -> float:
            otel.instrument(meter_provider=meter_provider)
            try:
                return loop()
            finally:
                otel.uninstrument()

        modes = {"bare requests": loop, "instrument": ours, "opentelemetry-instrumentation-requests": theirs}
        for mode in modes.values():
            mode()
        samples: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(rounds):
            for name, mode in modes.items():
                samples[name].append(mode())
        medians = {name: statistics.median(values) for name, values in samples.items()}
    finally:
        child.stdin.close()
        child.wait(10)
    base = medians["bare requests"]
    print(f"\nHTTP client, requests.Session GET to a local keep-alive server, median of {rounds} x "
          f"{requests_per_round}:")
    print(f"{'':42} {'CPU us/req':>11} {'overhead us':>12}")
    for name, ns in medians.items():
        print(f"{name:42} {ns / 1000:11.1f} {(ns - base) / 1000:12.2f}")
    ratio = (medians["instrument"] - base) / (medians["opentelemetry-instrumentation-requests"] - base)
    print(f"instrument's overhead = {ratio:.2f}x OpenTelemetry's (target <= 0.33)")
    return ratio


if __name__ == "__main__":
    time.sleep(0)
    main()

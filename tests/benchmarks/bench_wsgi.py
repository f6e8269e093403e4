"""Overhead per WSGI request: instrument's Middleware against OpenTelemetry's OpenTelemetryMiddleware.

No network: a loop plays the server, calling the application directly the way a WSGI
server does (a fresh environ per request, iterate the response, call ``close()``).
The application is trivial (``start_response`` and a one-chunk list), so what is
measured is the middleware. Rounds interleave: bare app, ``instrument`` (its
`Middleware`, exporting nowhere but aggregating on its background thread as usual),
OpenTelemetry's middleware with an SDK MeterProvider and no tracing exporter (the
default, non-recording tracer). Medians per request, each mode's overhead over the
bare app, and the ratio of the two overheads (target: at most 1/3).

Run with ``python tests/benchmarks/bench_wsgi.py [--rounds N] [--requests N]``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
from collections.abc import Callable, Iterable
from time import perf_counter_ns
from typing import Any

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/items/42",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bench",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    return _write


def _write(data: bytes) -> None:
    pass


def server_loop(application: Callable[..., Any], requests: int) -> float:
    """ns per request for *requests* requests served the way a WSGI server serves them."""
    template = ENVIRON
    start = perf_counter_ns()
    for _ in range(requests):
        result = application(dict(template), start_response)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    return (perf_counter_ns() - start) / requests


def main(rounds: int = 21, requests: int = 20_000) -> float:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import instrument
    from instrument.integrations.wsgi import Middleware

    instrument.configure(exporters=[], interval=3600.0)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    modes = {
        "bare app": app,
        "instrument Middleware": Middleware(app),
        "OpenTelemetryMiddleware": OpenTelemetryMiddleware(app, meter_provider=meter_provider),
    }
    for application in modes.values():  # warm up: first-use declarations, caches
        server_loop(application, 1000)
    samples: dict[str, list[float]] = {name: [] for name in modes}
    gc.collect()
    for _ in range(rounds):
        for name, application in modes.items():
            samples[name].append(server_loop(application, requests))
        instrument.flush(5.0)
    medians = {name: statistics.median(values) for name, values in samples.items()}

    base = medians["bare app"]
    print(f"\nWSGI middleware, trivial app called directly, median of {rounds} rounds x {requests} requests:")
    print(f"{'':28} {'ns/request':>11} {'overhead ns':>12}")
    for name, ns in medians.items():
        print(f"{name:28} {ns:11.0f} {ns - base:12.0f}")
    ratio = (medians["instrument Middleware"] - base) / (medians["OpenTelemetryMiddleware"] - base)
    print(f"instrument's overhead = {ratio:.3f}x OpenTelemetry's (target <= 0.333)")
    return ratio


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=20_000)
    options = parser.parse_args()
    main(options.rounds, options.requests)

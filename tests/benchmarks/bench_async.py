"""Overhead of the asynchronous integrations against OpenTelemetry's: ASGI, asyncpg, redis, aiohttp's client.

Four side-by-side comparisons in one process, each with rounds interleaved between three
modes (the bare call, instrument's integration, OpenTelemetry's instrumentation with an SDK
MeterProvider and the default non-recording tracer), one mode installed at a time:

- ASGI: a trivial application called directly in an event loop the way a server calls it
  (a fresh scope, ``receive``, ``send``): instrument's `Middleware` against
  ``opentelemetry.instrumentation.asgi.OpenTelemetryMiddleware``. Wall time per request.
- asyncpg: ``fetchval("SELECT 1")`` on a real PostgreSQL on 127.0.0.1 (started here, as the
  tests start it), ``AsyncPGInstrumentor``.
- redis: ``GET`` on a real redis-server on 127.0.0.1, sync client, ``RedisInstrumentor``.
- aiohttp client: ``GET`` with one ``ClientSession`` (made after the mode is installed) to a
  keep-alive HTTP server on 127.0.0.1, ``AioHttpClientInstrumentor``.

For the three with a server, the cost is the calling thread's CPU time per call (wall time
on a loopback round trip is dominated by the server and the scheduler). Medians over the
rounds; each mode's overhead over the bare call, and the ratio of instrument's overhead to
OpenTelemetry's (target: at most 1/3). Sections whose server binary is missing are skipped
with a line saying so.

Run with ``python tests/benchmarks/bench_async.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
from collections.abc import Awaitable, Callable, Iterator
from time import perf_counter_ns, thread_time_ns
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

BARE, OURS, OTEL = "bare", "instrument", "OpenTelemetry"


def meter_provider() -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()])


def report(title: str, medians: dict[str, float], unit: str) -> float:
    base = medians[BARE]
    print(f"\n{title}")
    print(f"{'':16} {unit:>12} {'overhead':>10}")
    for name, value in medians.items():
        print(f"{name:16} {value:12.0f} {value - base:10.0f}")
    ratio = (medians[OURS] - base) / (medians[OTEL] - base)
    print(f"instrument's overhead = {ratio:.3f}x OpenTelemetry's (target <= 0.333)")
    return ratio


def interleave(rounds: int, modes: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Median over *rounds* of each mode's measurement, modes taking turns in each round."""
    import instrument

    samples: dict[str, list[float]] = {name: [] for name in modes}
    for measure in modes.values():  # warm up
        measure()
    gc.collect()
    for _ in range(rounds):
        for name, measure in modes.items():
            samples[name].append(measure())
        instrument.flush(5.0)
    return {name: statistics.median(values) for name, values in samples.items()}


# --- ASGI ------------------------------------------------------------------------------

SCOPE = {
    "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/items/42", "raw_path": b"/items/42", "query_string": b"", "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")], "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
BODY = {"type": "http.response.body", "body": b"ok"}


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(START)
    await send(BODY)


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    pass


def asgi(rounds: int, requests: int) -> float:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    from instrument.integrations.asgi import Middleware

    loop = asyncio.new_event_loop()

    def serving(application: Callable[..., Awaitable[None]]) -> Callable[[], float]:
        async def serve() -> float:
            start = perf_counter_ns()
            for _ in range(requests):
                await application(dict(SCOPE), receive, send)
            return (perf_counter_ns() - start) / requests

        return lambda: loop.run_until_complete(serve())

    modes = {
        BARE: serving(asgi_app),
        OURS: serving(Middleware(asgi_app)),
        OTEL: serving(OpenTelemetryMiddleware(asgi_app, meter_provider=meter_provider())),
    }
    try:
        medians = interleave(rounds, modes)
    finally:
        loop.close()
    return report(f"ASGI middleware, trivial app called directly, median of {rounds} rounds x {requests} requests:",
                  medians, "ns/request")


# --- servers: one mode installed at a time ----------------------------------------------


def switcher(ours: list[str], otel: Any) -> Callable[[str], None]:
    """A function that installs mode *name* (and uninstalls the others)."""
    import instrument.auto

    def use(name: str) -> None:
        instrument.auto.uninstall(ours)
        if otel.is_instrumented_by_opentelemetry:
            otel.uninstrument()
        if name == OURS:
            instrument.auto.install(include=ours)
        elif name == OTEL:
            otel.instrument(meter_provider=meter_provider())

    return use


def per_mode(use: Callable[[str], None], measure: Callable[[], float]) -> dict[str, Callable[[], float]]:
    """For each mode, a measurement that installs the mode (`switcher`'s *use*) and then runs *measure*."""

    def installing(name: str) -> Callable[[], float]:
        def run() -> float:
            use(name)
            return measure()

        return run

    return {name: installing(name) for name in (BARE, OURS, OTEL)}


def cpu_per_call(call: Callable[[], Any], n: int) -> float:
    start = thread_time_ns()
    for _ in range(n):
        call()
    return (thread_time_ns() - start) / n


def redis_section(rounds: int, calls: int) -> float | None:
    import redis
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    from tests.integrations.db_servers import redis_server

    with skipped_without("redis-server") as available:
        if not available:
            return None
        with redis_server() as server:
            client = redis.Redis(host=server.host, port=server.port, password=server.password)
            client.set("k", "v")
            use = switcher(["redis"], RedisInstrumentor())
            medians = interleave(rounds, per_mode(use, lambda: cpu_per_call(lambda: client.get("k"), calls)))
            use(BARE)
    return report(f"redis GET on redis-server (127.0.0.1), calling thread's CPU, median of {rounds} rounds x "
                  f"{calls} calls:", medians, "ns/call")


def asyncpg_section(rounds: int, calls: int) -> float | None:
    import asyncpg
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    from tests.integrations.db_servers import postgres_server

    with skipped_without("initdb") as available:
        if not available:
            return None
        with postgres_server() as server:
            loop = asyncio.new_event_loop()
            connection = loop.run_until_complete(asyncpg.connect(
                host=server.host, port=server.port, user=server.user, password=server.password,
                database=server.database))
            use = switcher(["asyncpg"], AsyncPGInstrumentor())

            async def run() -> float:
                start = thread_time_ns()
                for _ in range(calls):
                    await connection.fetchval("SELECT 1")
                return (thread_time_ns() - start) / calls

            try:
                medians = interleave(rounds, per_mode(use, lambda: loop.run_until_complete(run())))
            finally:
                use(BARE)
                loop.run_until_complete(connection.close())
                loop.close()
    return report(f"asyncpg fetchval('SELECT 1') on PostgreSQL (127.0.0.1), event loop thread's CPU, median of "
                  f"{rounds} rounds x {calls} calls:", medians, "ns/call")


def aiohttp_section(rounds: int, calls: int) -> float:
    import aiohttp
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    from tests.integrations.http_server import Server

    server = Server()
    loop = asyncio.new_event_loop()
    use = switcher(["aiohttp_client"], AioHttpClientInstrumentor())
    url = server.url("/ok")

    async def run() -> float:
        async with aiohttp.ClientSession() as session:  # made after the mode is installed
            async with session.get(url) as response:  # a connection in the pool
                await response.read()
            start = thread_time_ns()
            for _ in range(calls):
                async with session.get(url) as response:
                    await response.read()
            return (thread_time_ns() - start) / calls

    try:
        medians = interleave(rounds, per_mode(use, lambda: loop.run_until_complete(run())))
    finally:
        use(BARE)
        loop.close()
        server.close()
    return report(f"aiohttp ClientSession GET (keep-alive, 127.0.0.1), event loop thread's CPU, median of {rounds} "
                  f"rounds x {calls} calls:", medians, "ns/call")


@contextlib.contextmanager
def skipped_without(binary: str) -> Iterator[bool]:
    """Whether *binary* can be found (the tests' own lookup); a line saying so when not."""
    from tests.integrations.db_servers import postgres_binary

    try:
        if binary == "initdb":
            postgres_binary("initdb")
        else:
            import shutil

            if shutil.which(binary) is None:
                raise FileNotFoundError(binary)
    except BaseException:  # pytest's skip is a BaseException
        print(f"\n({binary} is not installed: that section is skipped)")
        yield False
        return
    yield True


def main(rounds: int = 15) -> dict[str, float | None]:
    import instrument

    instrument.configure(exporters=[], interval=3600.0)
    return {
        "asgi": asgi(rounds, 5_000),
        "asyncpg": asyncpg_section(rounds, 500),
        "redis": redis_section(rounds, 1_000),
        "aiohttp_client": aiohttp_section(rounds, 300),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    main(parser.parse_args().rounds)

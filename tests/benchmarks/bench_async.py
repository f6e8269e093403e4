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
on a loopback round trip is dominated by the server and the scheduler), medians over the
rounds. That moves by tens of microseconds from one round to the next on a shared machine,
more than either overhead, so when valgrind is installed each mode also runs in fresh
processes under callgrind, as tests/benchmarks/bench_http.py does: instructions per call,
repeatable to the instruction, on which the target is judged. Each mode's overhead over
the bare call, and the ratio of instrument's overhead to OpenTelemetry's (target: at most
1/3). Sections whose server binary is missing are skipped with a line saying so.

Run with ``python tests/benchmarks/bench_async.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


# --- clients of a server: one mode installed at a time ----------------------------------


@dataclass
class Client:
    """One client library to compare: how to instrument it each way, and how to make one call."""

    name: str
    title: str
    ours: str  # instrument's integration
    otel: Callable[[], Any]  # makes OpenTelemetry's instrumentor
    # target -> (one call, close): opened after the mode is installed (aiohttp's session must be)
    open: Callable[[dict[str, Any]], tuple[Callable[[], Any], Callable[[], Any]]]
    calls: int


def open_redis(target: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    import redis

    client = redis.Redis(**target)
    client.set("k", "v")
    return lambda: client.get("k"), client.close


def open_asyncpg(target: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    import asyncpg

    loop = asyncio.new_event_loop()
    connection = loop.run_until_complete(asyncpg.connect(**target))

    def close() -> None:
        loop.run_until_complete(connection.close())
        loop.close()

    return lambda: loop.run_until_complete(connection.fetchval("SELECT 1")), close


def open_aiohttp(target: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    import aiohttp

    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(make_session(aiohttp))

    async def get() -> bytes:
        async with session.get(target["url"]) as response:
            return await response.read()

    def close() -> None:
        loop.run_until_complete(session.close())
        loop.close()

    return lambda: loop.run_until_complete(get()), close


async def make_session(aiohttp: Any) -> Any:
    return aiohttp.ClientSession()  # inside a running loop, as aiohttp wants


def redis_otel() -> Any:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    return RedisInstrumentor()


def asyncpg_otel() -> Any:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    return AsyncPGInstrumentor()


def aiohttp_otel() -> Any:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    return AioHttpClientInstrumentor()


CLIENTS = {
    "redis": Client("redis", "redis GET on redis-server (127.0.0.1)", "redis", redis_otel, open_redis, 1_000),
    "asyncpg": Client("asyncpg", "asyncpg fetchval('SELECT 1') on PostgreSQL (127.0.0.1)", "asyncpg", asyncpg_otel,
                      open_asyncpg, 500),
    "aiohttp": Client("aiohttp", "aiohttp ClientSession GET (keep-alive, 127.0.0.1)", "aiohttp_client",
                      aiohttp_otel, open_aiohttp, 300),
}


def install(client: Client, mode: str, otel: Any) -> None:
    """Put *client*'s library in *mode* (undoing the other modes)."""
    import instrument.auto

    instrument.auto.uninstall([client.ours])
    if otel.is_instrumented_by_opentelemetry:
        otel.uninstrument()
    if mode == OURS:
        instrument.auto.install(include=[client.ours])
    elif mode == OTEL:
        otel.instrument(meter_provider=meter_provider())


def timed_calls(client: Client, target: dict[str, Any], calls: int) -> float:
    """The calling thread's CPU ns per call, over *calls* calls after a warm-up."""
    call, close = client.open(target)
    try:
        for _ in range(50):
            call()
        start = thread_time_ns()
        for _ in range(calls):
            call()
        return (thread_time_ns() - start) / calls
    finally:
        close()


def child(name: str, mode: str, target: str, calls: int) -> None:
    """Run in a fresh process (under callgrind): *calls* calls of client *name* in *mode*."""
    import instrument

    instrument.configure(exporters=[], interval=3600.0)
    client = CLIENTS[name]
    install(client, mode, client.otel())
    timed_calls(client, json.loads(target), calls)


def instructions(name: str, mode: str, target: dict[str, Any], calls: int) -> int:
    """Instructions a child process making *calls* calls in *mode* executes in all (callgrind)."""
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "callgrind.out")
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__, "--child", name,
             mode, json.dumps(target), str(calls)],
            capture_output=True, text=True, check=True,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def compare(client: Client, target: dict[str, Any], rounds: int) -> float:
    """CPU time in this process (rounds interleaved), then, with valgrind, instructions per call
    from fresh processes (300 calls minus 100, so start-up and warm-up cancel): the target is
    judged on those, which repeat to the instruction where CPU time moves by tens of us."""
    otel = client.otel()

    def measure(mode: str) -> float:
        install(client, mode, otel)
        return timed_calls(client, target, client.calls)

    modes = {mode: functools.partial(measure, mode) for mode in (BARE, OURS, OTEL)}
    try:
        medians = interleave(rounds, modes)
    finally:
        install(client, BARE, otel)
    ratio = report(f"{client.title}, calling thread's CPU, median of {rounds} rounds x {client.calls} calls:",
                   medians, "ns/call")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: no instruction counts")
        return ratio
    counted = {mode: (instructions(client.name, mode, target, 300) - instructions(client.name, mode, target, 100)) / 200
               for mode in (BARE, OURS, OTEL)}
    return report(f"{client.title}, instructions per call (callgrind, 300 calls minus 100, fresh processes):",
                  counted, "instr/call")


def with_redis(rounds: int) -> float | None:
    from tests.integrations.db_servers import redis_server

    if not found("redis-server"):
        return None
    with redis_server() as server:
        return compare(CLIENTS["redis"], {"host": server.host, "port": server.port, "password": server.password},
                       rounds)


def with_postgres(rounds: int) -> float | None:
    from tests.integrations.db_servers import postgres_server

    if not found("initdb"):
        return None
    with postgres_server() as server:
        target = {"host": server.host, "port": server.port, "user": server.user, "password": server.password,
                  "database": server.database}
        return compare(CLIENTS["asyncpg"], target, rounds)


def with_http_server(rounds: int) -> float:
    from tests.integrations.http_server import Server

    server = Server()
    try:
        return compare(CLIENTS["aiohttp"], {"url": server.url("/ok")}, rounds)
    finally:
        server.close()


def found(binary: str) -> bool:
    """Whether the tests' own lookup finds server *binary*; a line saying the section is skipped if not."""
    from tests.integrations.db_servers import postgres_binary

    try:
        if binary == "initdb":
            postgres_binary("initdb")
        elif shutil.which(binary) is None:
            raise FileNotFoundError(binary)
    except BaseException:  # pytest's skip is a BaseException
        print(f"\n({binary} is not installed: that section is skipped)")
        return False
    return True


def main(rounds: int = 15) -> dict[str, float | None]:
    import instrument

    instrument.configure(exporters=[], interval=3600.0)
    return {
        "asgi": asgi(rounds, 5_000),
        "asyncpg": with_postgres(rounds),
        "redis": with_redis(rounds),
        "aiohttp_client": with_http_server(rounds),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rounds", type=int, default=15)
        main(parser.parse_args().rounds)

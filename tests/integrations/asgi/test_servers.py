"""Real ASGI servers under `instrument run`, driven over HTTP on 127.0.0.1: every request
counted exactly once across workers, with the route template, status and error it had, and
measured to the end of its body."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ...helpers import free_port, require_module
from ..asgi_apps import STREAM_PAUSE
from ..wsgi_servers import ACTIVE, Served, extremes, requests_by_tags, scrape_requests, server_binary

PLAIN = "tests.integrations.asgi_apps:application"
FASTAPI = "tests.integrations.asgi_apps:api"
DJANGO = "tests.integrations.asgi_django:application"

FASTAPI_PATHS = ["/loans/1", "/loans/2", "/loans/3", "/users/ada/orders", "/users/bob/orders",
                 "/legacy/parts/7", "/nowhere", "/boom"]
FASTAPI_STATUSES = [200] * 6 + [404, 500]
FASTAPI_ROUTES = {
    ("/loans/{loan_id}", 200, None): 3,
    ("/users/{name}/orders", 200, None): 2,
    ("/legacy/parts/{part}", 200, None): 1,
    (None, 404, None): 1,
    ("/boom", 500, "KeyError"): 1,
}


def get_all(server, paths, workers=8):
    """GET every path concurrently; the list of status codes, in order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda path: requests.get(server.url(path), timeout=30).status_code, paths))


def uvicorn(*options):
    return [server_binary("uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", *options]


def gunicorn_uvicorn(app):
    return [server_binary("gunicorn"), "--bind", "127.0.0.1:{port}", "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
            app]


def stopped(server):
    """Stop *server*; whether it exited as it does without instrument: uvicorn (and gunicorn's
    uvicorn worker) re-raise the SIGTERM they shut down on, once shut down."""
    return server.stop() in (0, -signal.SIGTERM)


def routes(server):
    return requests_by_tags(server.points(), "http.route", "http.response.status_code", "error.type")


class TestUvicorn:
    def test_plain_app_statuses_errors_and_streaming(self, tmp_path):
        """A plain ASGI app: one record per request; a stream measured to its last chunk; an app
        that raises or returns without a response is a 500; lifespan is not a request."""
        require_module("uvicorn")
        with Served(tmp_path, uvicorn("--loop", "asyncio", PLAIN)) as server:  # the others run on uvloop
            assert "last chunk\n" in requests.get(server.url("/stream"), timeout=30).text
            assert [200, 200, 500, 500] == get_all(server, ["/ok", "/ok", "/boom", "/empty"])
            assert stopped(server), server.output()
        points = server.points()
        assert {
            ("GET", 200, None): 3,
            ("GET", 500, "ZeroDivisionError"): 1,
            ("GET", 500, "500"): 1,
        } == requests_by_tags(points, "http.request.method", "http.response.status_code", "error.type")
        assert extremes(points)[1] >= STREAM_PAUSE
        assert 0 == [point["value"] for point in points if point["name"] == ACTIVE][-1]

    def test_fastapi_routes(self, tmp_path):
        """FastAPI: the path template (with its router's prefix and a Starlette mount's path) is the tag."""
        require_module("fastapi")
        with Served(tmp_path, uvicorn(FASTAPI)) as server:
            assert FASTAPI_STATUSES == get_all(server, FASTAPI_PATHS)
            assert stopped(server), server.output()
        assert FASTAPI_ROUTES == routes(server)

    def test_fastapi_stream_measured_to_its_end(self, tmp_path):
        """A StreamingResponse that takes STREAM_PAUSE: the duration covers it."""
        require_module("fastapi")
        with Served(tmp_path, uvicorn(FASTAPI)) as server:
            assert "last chunk\n" in requests.get(server.url("/stream"), timeout=30).text
            assert stopped(server), server.output()
        assert extremes(server.points(), **{"http.route": "/stream"})[0] >= STREAM_PAUSE

    def test_event_stream_measured_until_the_client_goes_away(self, tmp_path):
        """A server-sent event stream the client closes after two events: recorded once, a 200
        without error, when the client goes away (not when the server stops, which would cancel it)."""
        require_module("fastapi")
        with Served(tmp_path, uvicorn(FASTAPI)) as server:
            with requests.get(server.url("/events"), stream=True, timeout=30) as response:
                lines = response.iter_lines()
                assert [b"data: 0", b"", b"data: 1"] == [next(lines) for _ in range(3)]
            deadline = time.monotonic() + 10  # exported within the interval (1 s) once recorded
            while time.monotonic() < deadline and not routes(server):
                time.sleep(0.1)
            assert stopped(server), server.output()
        assert {("/events", 200, None): 1} == routes(server)

    def test_workers_started_by_spawn_count_every_request_once(self, tmp_path):
        """--workers 2 (processes started by spawn): the total is exactly what was sent."""
        require_module("fastapi")
        sent = 40
        with Served(tmp_path, uvicorn("--workers", "2", FASTAPI)) as server:
            assert [200] * sent == get_all(server, [f"/loans/{n}" for n in range(sent)])
            assert stopped(server), server.output()
        assert {("/loans/{loan_id}", 200, None): sent} == routes(server)

    @pytest.mark.parametrize("server_kind", ["uvicorn", "gunicorn"])
    def test_one_prometheus_endpoint_sums_the_workers(self, tmp_path, server_kind):
        """INSTRUMENT_EXPORTERS=prometheus with two workers (uvicorn's, started by spawn; gunicorn's
        uvicorn workers, forked): the parent serves the endpoint, the workers forward to it, and
        one scrape shows exactly the requests sent."""
        require_module("fastapi")
        sent = 30
        port = free_port()
        env = {"INSTRUMENT_PROMETHEUS_ADDRESS": f"127.0.0.1:{port}", "INSTRUMENT_INTERVAL": "0.2"}
        command = uvicorn("--workers", "2", FASTAPI) if server_kind == "uvicorn" else gunicorn_uvicorn(FASTAPI)
        with Served(tmp_path, command, env=env, exporters="prometheus") as server:
            assert [200] * sent == get_all(server, [f"/loans/{n}" for n in range(sent)])
            total, body = scrape_requests(port, sent)
            assert stopped(server), server.output()
        assert sent == total, body
        assert 'http_route="/loans/{loan_id}"' in body

    def test_reload_process_is_measured(self, tmp_path):
        """--reload serves from a process the reloader spawns: its requests are measured."""
        require_module("fastapi")
        with Served(tmp_path, uvicorn("--reload", "--reload-dir", str(tmp_path), FASTAPI)) as server:
            assert FASTAPI_STATUSES == get_all(server, FASTAPI_PATHS)
            assert stopped(server), server.output()
        assert FASTAPI_ROUTES == routes(server)

    def test_django_asgi_routes(self, tmp_path):
        """Django's ASGI handler under uvicorn: the resolver's route is the tag; a view that raises is a 500."""
        require_module("django")
        with Served(tmp_path, uvicorn(DJANGO)) as server:
            assert [200, 200, 200, 404, 500] == get_all(
                server, ["/items/1/", "/items/2/", "/users/ada/orders/", "/nowhere/", "/boom/"])
            assert stopped(server), server.output()
        assert {
            ("items/<int:item_id>/", 200, None): 2,
            ("users/<str:name>/orders/", 200, None): 1,
            (None, 404, None): 1,
            ("boom/", 500, "KeyError"): 1,
        } == routes(server)


class TestHypercorn:
    def test_fastapi_routes_across_workers(self, tmp_path):
        """hypercorn with two workers: each request counted once, with its template."""
        require_module("fastapi")
        command = [server_binary("hypercorn"), "--bind", "127.0.0.1:{port}", "--workers", "2", FASTAPI]
        with Served(tmp_path, command) as server:
            assert FASTAPI_STATUSES == get_all(server, FASTAPI_PATHS)
            time.sleep(0.5)
            assert stopped(server), server.output()
        assert FASTAPI_ROUTES == routes(server), server.output()


class TestGunicornUvicornWorker:
    def test_fastapi_routes_across_workers(self, tmp_path):
        """gunicorn -k uvicorn's worker: the app is served as ASGI (not wrapped as WSGI), counted once."""
        require_module("fastapi")
        with Served(tmp_path, gunicorn_uvicorn(FASTAPI)) as server:
            assert FASTAPI_STATUSES == get_all(server, FASTAPI_PATHS)
            assert stopped(server), server.output()
        assert FASTAPI_ROUTES == routes(server)

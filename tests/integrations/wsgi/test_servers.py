"""Real WSGI servers under `instrument run`, driven over HTTP on 127.0.0.1: every request
counted exactly once across workers, with the route template, status and error it had."""

from __future__ import annotations

import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ...helpers import free_port, require_module
from ..wsgi_apps import CLOSE_PAUSE, STREAM_PAUSE
from ..wsgi_servers import (
    ACTIVE,
    Served,
    extremes,
    requests_by_tags,
    scrape_requests,
    server_binary,
    total_requests,
)

PLAIN = "tests.integrations.wsgi_apps:application"
FLASK = "tests.integrations.wsgi_flask:app"
DJANGO = "tests.integrations.wsgi_django:application"


def get_all(server, paths, workers=8):
    """GET every path concurrently; the list of status codes, in order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda path: requests.get(server.url(path), timeout=30).status_code, paths))


def gunicorn(*options):
    return [server_binary("gunicorn"), "--bind", "127.0.0.1:{port}", "--graceful-timeout", "20", *options]


class TestGunicorn:
    def test_every_request_counted_once_across_recycled_workers(self, tmp_path):
        """Two sync workers recycled every 9 requests: the jsonl total is exactly what was sent."""
        sent = 61
        command = gunicorn("-w", "2", "--max-requests", "9", "--max-requests-jitter", "0", PLAIN)
        with Served(tmp_path, command) as server:
            statuses = get_all(server, ["/slow"] * sent)
            assert 0 == server.stop(), server.output()
        assert [200] * sent == statuses
        assert "Autorestarting worker after current request" in server.output()
        points = server.points()
        assert {("GET", 200, None, None): sent} == requests_by_tags(
            points, "http.request.method", "http.response.status_code", "http.route", "error.type")
        assert sent == total_requests(points)

    def test_flask_routes_under_gthread_workers(self, tmp_path):
        """Flask under gunicorn's gthread workers: the route template is the tag, each request counted once."""
        require_module("flask")
        paths = [f"/items/{n}" for n in range(12)] + ["/users/ada/orders", "/users/bob/orders", "/nowhere", "/boom"]
        with Served(tmp_path, gunicorn("-w", "2", "--threads", "4", "--worker-class", "gthread", FLASK)) as server:
            statuses = get_all(server, paths)
            assert 0 == server.stop(), server.output()
        assert [200] * 14 + [404, 500] == statuses
        assert {
            ("/items/<int:item_id>", 200, None): 12,
            ("/users/<name>/orders", 200, None): 2,
            (None, 404, None): 1,
            ("/boom", 500, "ZeroDivisionError"): 1,
        } == requests_by_tags(server.points(), "http.route", "http.response.status_code", "error.type")

    def test_django_routes_and_errors(self, tmp_path):
        """Django under gunicorn: the resolver's route is the tag; a view that raises is a 500 with its class."""
        require_module("django")
        paths = ["/items/1/", "/items/2/", "/users/ada/orders/", "/nowhere/", "/boom/"]
        with Served(tmp_path, gunicorn("-w", "2", DJANGO)) as server:
            statuses = get_all(server, paths)
            assert 0 == server.stop(), server.output()
        assert [200, 200, 200, 404, 500] == statuses
        assert {
            ("items/<int:item_id>/", 200, None): 2,
            ("users/<str:name>/orders/", 200, None): 1,
            (None, 404, None): 1,
            ("boom/", 500, "KeyError"): 1,
        } == requests_by_tags(server.points(), "http.route", "http.response.status_code", "error.type")

    def test_streaming_response_is_measured_to_its_end(self, tmp_path):
        """A body that takes 200 ms to produce: the duration covers it; /file keeps gunicorn's sendfile path."""
        with Served(tmp_path, gunicorn("-w", "1", PLAIN)) as server:
            assert "last chunk\n" in requests.get(server.url("/stream"), timeout=30).text
            assert requests.get(server.url("/file"), timeout=30).text.startswith('"""A plain WSGI application')
            assert 0 == server.stop(), server.output()
        points = server.points()
        shortest, longest = extremes(points)
        assert shortest < STREAM_PAUSE <= longest  # /file is quick, /stream takes its pause
        assert 2 == total_requests(points)
        assert 0 == [point["value"] for point in points if point["name"] == ACTIVE][-1]


def wait_for_respawns(server, timeout=15.0):
    """Until every recycled uwsgi worker has been replaced and the new ones are up.

    A worker spawned while the master shuts down can take the stop signal before uwsgi
    installed its handler in it, and then lingers until the master's mercy runs out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.output()
        if log.count("Respawned uWSGI worker") >= log.count("is done. Seeya!"):
            break
        time.sleep(0.1)
    time.sleep(1.0)


def uwsgi(*options):
    return [server_binary("uwsgi"), "--http-socket", "127.0.0.1:{port}", "--master", "--need-app",
            "--disable-logging", *options]


class TestUwsgi:
    @pytest.mark.parametrize("fork_options", [[], ["--py-call-uwsgi-fork-hooks"]], ids=["plain-fork", "fork-hooks"])
    def test_plain_app_counted_once_across_recycled_workers(self, tmp_path, fork_options):
        """--processes 2 --enable-threads, workers recycled: exact total, workers reset after each fork."""
        sent = 40
        command = uwsgi("--processes", "2", "--enable-threads", "--max-requests", "9", "--min-worker-lifetime", "0",
                        *fork_options, "--module", PLAIN)
        with Served(tmp_path, command, stop=signal.SIGINT) as server:
            statuses = get_all(server, ["/slow"] * sent)
            wait_for_respawns(server)
            assert 0 == server.stop(), server.output()
        assert [200] * sent == statuses
        assert "Respawned uWSGI worker" in server.output()
        points = server.points()
        assert {("GET", 200): sent} == requests_by_tags(points, "http.request.method", "http.response.status_code")
        # Recorded in the master before the fork: not exported by every worker again. The master
        # runs no instrument thread (forking would be unsafe) and no exit hook: not at all.
        assert 0 == sum(point["value"] for point in points if point["name"] == "tests.wsgi_apps.imported")

    def test_one_prometheus_endpoint_sums_recycled_workers(self, tmp_path):
        """INSTRUMENT_EXPORTERS=prometheus: the master serves the endpoint, uwsgi's forked and
        recycled workers forward to it, and one scrape shows exactly the requests sent."""
        sent = 40
        port = free_port()
        command = uwsgi("--processes", "2", "--enable-threads", "--max-requests", "9", "--min-worker-lifetime", "0",
                        "--module", PLAIN)
        env = {"INSTRUMENT_PROMETHEUS_ADDRESS": f"127.0.0.1:{port}", "INSTRUMENT_INTERVAL": "0.2"}
        with Served(tmp_path, command, stop=signal.SIGINT, env=env, exporters="prometheus") as server:
            assert [200] * sent == get_all(server, ["/slow"] * sent)
            wait_for_respawns(server)
            total, body = scrape_requests(port, sent)
            failures = [line for line in body.splitlines() if line.startswith("instrument_export_failures")]
            assert 0 == server.stop(), server.output()
        assert "Respawned uWSGI worker" in server.output()
        assert sent == total, body
        assert [] == [line for line in failures if not line.endswith(" 0")]

    @pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
    def test_a_stop_while_a_request_closes_loses_nothing(self, tmp_path, stop):
        """Stopped (SIGINT; SIGTERM with --die-on-term) while the worker still closes a response its
        client already has: that request and the ones before it are all exported."""
        command = uwsgi("--processes", "1", "--enable-threads", "--die-on-term", "--module", PLAIN)
        with Served(tmp_path, command, stop=stop) as server:
            statuses = [requests.get(server.url(path), timeout=30).status_code for path in ["/ok"] * 3]
            started = time.monotonic()
            assert "ok" == requests.get(server.url("/slow-close"), timeout=30).text
            assert time.monotonic() - started < CLOSE_PAUSE  # the client is done; the worker is not
            assert 0 == server.stop(), server.output()
        assert [200] * 3 == statuses
        assert 4 == total_requests(server.points())

    def test_a_stop_during_a_long_request_ends_the_worker_within_exit_timeout(self, tmp_path):
        """A request that would take a minute delays the stop by at most exit_timeout; what the
        worker served before is exported."""
        command = uwsgi("--processes", "1", "--enable-threads", "--module", PLAIN)
        with Served(tmp_path, command, stop=signal.SIGINT, env={"INSTRUMENT_EXIT_TIMEOUT": "1"}) as server:
            statuses = [requests.get(server.url("/ok"), timeout=30).status_code for _ in range(3)]
            hanging = requests.get(server.url("/hang"), timeout=30, stream=True)
            assert b"first chunk\n" == hanging.raw.read(12)
            started = time.monotonic()
            assert 0 == server.stop(), server.output()
            stopped_after = time.monotonic() - started
            hanging.close()
        assert [200] * 3 == statuses
        assert stopped_after < 5
        assert 3 == total_requests(server.points())

    def test_flask_app_routes(self, tmp_path):
        """A Flask app under uwsgi is found through Flask itself, with its route templates."""
        require_module("flask")
        command = uwsgi("--processes", "2", "--enable-threads", "--module", FLASK)
        with Served(tmp_path, command, stop=signal.SIGINT) as server:
            statuses = get_all(server, ["/items/1", "/items/2", "/users/ada/orders", "/boom", "/stream"])
            assert 0 == server.stop(), server.output()
        assert [200, 200, 200, 500, 200] == statuses
        points = server.points()
        assert {
            ("/items/<int:item_id>", 200, None): 2,
            ("/users/<name>/orders", 200, None): 1,
            ("/boom", 500, "ZeroDivisionError"): 1,
            ("/stream", 200, None): 1,
        } == requests_by_tags(points, "http.route", "http.response.status_code", "error.type")
        assert extremes(points, **{"http.route": "/stream"})[0] >= STREAM_PAUSE


class TestWaitress:
    def command(self):
        require_module("waitress")
        return [sys.executable, "-m", "waitress", "--listen=127.0.0.1:{port}", "--threads=4", PLAIN]

    def test_streaming_errors_and_content_length(self, tmp_path):
        """Streaming measured to its end, an app that raises is a 500 with error.type, Content-Length kept."""
        with Served(tmp_path, self.command(), stop=signal.SIGINT, repeat_stop=True) as server:
            ok = requests.get(server.url("/ok"), timeout=30)
            streamed = requests.get(server.url("/stream"), timeout=30)
            boom = requests.get(server.url("/boom"), timeout=30)
            with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the first chunk went out
                requests.get(server.url("/late-boom"), timeout=30)
            unavailable = requests.get(server.url("/unavailable"), timeout=30)
            served_file = requests.get(server.url("/file"), timeout=30)  # sent by the channel, closed later
            assert 0 == server.stop(), server.output()
        assert ("2", 200) == (ok.headers.get("Content-Length"), ok.status_code)
        assert (200, 500, 503) == (streamed.status_code, boom.status_code, unavailable.status_code)
        assert served_file.text.startswith('"""A plain WSGI application')
        points = server.points()
        assert {
            (200, None): 3,
            (500, "RuntimeError"): 1,
            (200, "ValueError"): 1,  # raised after the first chunk: the 200 had been sent
            (503, "503"): 1,
        } == requests_by_tags(points, "http.response.status_code", "error.type")
        assert extremes(points, **{"http.response.status_code": 200})[1] >= STREAM_PAUSE


    def test_sigterm_exports_every_request_and_still_ends_the_server(self, tmp_path):
        """waitress leaves SIGTERM at its default: instrument run's handler lets a request that is
        closing a response its client has be recorded, flushes, then SIGTERM ends the server."""
        with Served(tmp_path, self.command(), stop=signal.SIGTERM) as server:
            statuses = get_all(server, ["/ok"] * 5 + ["/slow-close"], workers=2)
            assert -signal.SIGTERM == server.stop(), server.output()
        assert [200] * 6 == statuses
        assert 6 == total_requests(server.points())


class TestWsgiref:
    def test_simple_server(self, tmp_path):
        """make_server() serves the wrapped app: counts, streaming duration and the file wrapper."""
        command = [sys.executable, "-m", "tests.integrations.wsgi_apps", "{port}"]
        with Served(tmp_path, command, stop=signal.SIGINT, repeat_stop=True) as server:
            statuses = get_all(server, ["/ok"] * 5 + ["/stream", "/file", "/boom"], workers=1)
            assert 0 == server.stop(), server.output()
        assert "serving with Middleware" in server.output()
        assert [200] * 7 + [500] == statuses
        points = server.points()
        assert {(200, None): 7, (500, "RuntimeError"): 1} == requests_by_tags(
            points, "http.response.status_code", "error.type")
        assert extremes(points)[1] >= STREAM_PAUSE

"""The WSGI middleware called directly, and the auto-installed hooks in this process: a
request is measured once, from the call to close(), and the application's behaviour,
exceptions and response object reach the server unchanged."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import types
import wsgiref.util
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests

import instrument.auto
from instrument import _record
from instrument.integrations import _uwsgi, wsgi
from instrument.integrations.wsgi import Middleware
from instrument.testing import capture

from ..helpers import require_module

DURATION = "http.server.request.duration"
ACTIVE = "http.server.active_requests"
BASE_TAGS = {"http.request.method": "GET", "url.scheme": "http"}


def environ(method="GET", path="/", **extra):
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
           "wsgi.url_scheme": "http", "wsgi.version": (1, 0)}
    env.update(extra)
    return env


class Server:
    """A minimal WSGI server: calls the app, iterates the response, closes it."""

    def __init__(self, *, refuse_exc_info=False):
        self.calls = []
        self.refuse_exc_info = refuse_exc_info
        self.written = []

    def start_response(self, status, headers, exc_info=None):
        self.calls.append((status, headers, exc_info))
        if exc_info is not None and self.refuse_exc_info:
            raise exc_info[1].with_traceback(exc_info[2])  # "headers already sent"
        return self.written.append

    def serve(self, app, env=None):
        result = app(env or environ(), self.start_response)
        try:
            return b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def requests_by(captured, *keys):
    found = {}
    for point in captured.find(DURATION):
        key = tuple(point.tags.get(k) for k in keys)
        found[key] = found.get(key, 0) + point.histogram.count
    return found


class TestMiddleware:
    def test_one_measurement_with_method_scheme_and_status(self):
        """A request is one histogram record tagged method, scheme and status code."""
        with capture() as captured:
            assert b"hello" == Server().serve(Middleware(hello))
        assert 1 == captured.histogram(DURATION, {**BASE_TAGS, "http.response.status_code": 200}).count

    def test_unknown_method_is_other(self):
        """A method outside the known set is tagged _OTHER, never the raw value; methods are
        case-sensitive, as OpenTelemetry and RFC 9110 say, so "get" is not GET."""
        with capture() as captured:
            Server().serve(Middleware(hello), environ("BREW"))
            Server().serve(Middleware(hello), environ("get"))
            Server().serve(Middleware(hello), environ("GET"))
        assert {("_OTHER",): 2, ("GET",): 1} == requests_by(captured, "http.request.method")

    def test_duration_ends_at_close_not_at_return(self):
        """The clock runs until the server closes the response, so a slow body is measured."""
        closed = []

        class Body:
            def __iter__(self):
                yield b"a"
                time.sleep(0.05)
                yield b"b"

            def close(self):
                time.sleep(0.05)
                closed.append(True)

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body()

        with capture() as captured:
            assert b"ab" == Server().serve(Middleware(app))
        assert [True] == closed
        assert captured.histogram(DURATION, {**BASE_TAGS, "http.response.status_code": 200}).min >= 0.1

    def test_response_keeps_len_and_attributes(self):
        """Servers still see the original's len() (Content-Length) and its other attributes."""
        class Stream:
            block_size = 4096

            def __iter__(self):
                yield b"x"

        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"one chunk"]

        def stream_app(environ, start_response):
            start_response("200 OK", [])
            return Stream()

        result = Middleware(app)(environ(), Server().start_response)
        streamed = Middleware(stream_app)(environ(), Server().start_response)
        assert 1 == len(result)
        assert not hasattr(streamed, "__len__")
        assert 4096 == streamed.block_size
        result.close()
        streamed.close()

    def test_file_wrapper_keeps_its_identity(self):
        """A wsgi.file_wrapper object is handed back itself (sendfile paths) and measured until closed."""
        env = environ(**{"wsgi.file_wrapper": wsgiref.util.FileWrapper})
        handle = open(__file__, "rb")

        def app(environ, start_response):
            start_response("200 OK", [])
            return environ["wsgi.file_wrapper"](handle)

        with capture() as captured:
            result = Middleware(app)(env, Server().start_response)
            assert isinstance(result, wsgiref.util.FileWrapper)
            assert b"".join(result).startswith(b'"""The WSGI middleware')
            time.sleep(0.05)
            result.close()
        assert handle.closed
        assert captured.histogram(DURATION, {**BASE_TAGS, "http.response.status_code": 200}).min >= 0.05

    def test_close_called_once_and_request_finished_once(self):
        """Closing twice closes the original twice, as without the middleware, but records once."""
        closes = []

        class Body(list):
            def close(self):
                closes.append(1)

        def app(environ, start_response):
            start_response("204 No Content", [])
            return Body()

        with capture() as captured:
            result = Middleware(app)(environ(), Server().start_response)
            result.close()
            result.close()
        assert [1, 1] == closes
        assert 1 == captured.histogram(DURATION, {**BASE_TAGS, "http.response.status_code": 204}).count

    def test_write_callable_is_the_servers(self):
        """start_response returns the server's write() callable, which the app may use."""
        def app(environ, start_response):
            write = start_response("200 OK", [])
            write(b"legacy ")
            return [b"body"]

        server = Server()
        assert b"body" == server.serve(Middleware(app))
        assert [b"legacy "] == server.written


class TestErrors:
    def test_exception_before_start_response_propagates_unchanged(self):
        """The very exception object reaches the server; recorded as a 500 with its class."""
        error = LookupError("no such loan")

        def app(environ, start_response):
            raise error

        with capture() as captured:
            with pytest.raises(LookupError) as raised:
                Server().serve(Middleware(app))
        assert error is raised.value
        assert {(500, "LookupError"): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_generator_raising_after_first_chunk(self):
        """An error after the first chunk propagates from iteration; the status already sent stays."""
        def app(environ, start_response):
            start_response("200 OK", [])
            yield b"first"
            raise ValueError("broken stream")

        with capture() as captured:
            with pytest.raises(ValueError, match="broken stream"):
                Server().serve(Middleware(app))
        assert {(200, "ValueError"): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_close_raising_propagates(self):
        """An exception from the iterable's close() reaches the server and is recorded."""
        class Body(list):
            def close(self):
                raise OSError("close failed")

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body([b"x"])

        with capture() as captured:
            with pytest.raises(OSError, match="close failed"):
                Server().serve(Middleware(app))
        assert {(200, "OSError"): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_exc_info_recall_changes_the_status(self):
        """start_response called again with exc_info before headers are sent: the new status counts."""
        def app(environ, start_response):
            start_response("200 OK", [])
            try:
                raise KeyError("late")
            except KeyError:
                start_response("500 Internal Server Error", [], sys.exc_info())
            return [b"error page"]

        server = Server()
        with capture() as captured:
            assert b"error page" == server.serve(Middleware(app))
        assert KeyError is server.calls[1][2][0]  # the server got the exc_info
        assert {(500, "500"): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_exc_info_recall_after_headers_sent_reraises(self):
        """When the server re-raises exc_info (headers already sent), the original exception propagates."""
        def app(environ, start_response):
            start_response("200 OK", [])
            try:
                raise KeyError("late")
            except KeyError:
                start_response("500 Internal Server Error", [], sys.exc_info())
            return [b"never"]

        with capture() as captured:
            with pytest.raises(KeyError, match="late"):
                Server(refuse_exc_info=True).serve(Middleware(app))
        assert {(200, "KeyError"): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_server_error_status_is_an_error(self):
        """A 5xx response without an exception gets error.type = its status code; 4xx does not."""
        def app(environ, start_response):
            status = "503 Service Unavailable" if environ["PATH_INFO"] == "/busy" else "404 Not Found"
            start_response(status, [])
            return [b""]

        with capture() as captured:
            Server().serve(Middleware(app), environ(path="/busy"))
            Server().serve(Middleware(app), environ(path="/missing"))
        assert {(503, "503"): 1, (404, None): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_recording_failure_never_reaches_the_app(self, monkeypatch):
        """If recording itself breaks, the request still completes normally."""
        def broken(series, value):
            raise RuntimeError("recorder broken")

        monkeypatch.setattr(_record, "append", broken)
        assert b"hello" == Server().serve(Middleware(hello))


class TestCountedOnce:
    def test_wrapped_twice_counts_once(self):
        """Middleware around Middleware (by hand, or by hand plus auto) records one request."""
        with capture() as captured:
            Server().serve(Middleware(Middleware(hello)))
        assert {(200,): 1} == requests_by(captured, "http.response.status_code")

    def test_wrap_does_not_rewrap(self):
        """The hooks' wrap() returns an app that is already a Middleware as it is."""
        app = Middleware(hello)
        assert app is wsgi.wrap(app)
        assert isinstance(wsgi.wrap(hello), Middleware)

    def test_middleware_forwards_app_attributes(self):
        """Attributes of the wrapped app stay reachable through the middleware."""
        hello.config = {"name": "hello"}
        try:
            assert {"name": "hello"} == Middleware(hello).config
        finally:
            del hello.config

    def test_refuses_a_non_callable(self):
        """Wrapping something that is not an application fails at once, saying what was given."""
        with pytest.raises(TypeError, match="needs a WSGI application"):
            Middleware("app:application")


class TestActiveRequests:
    def test_counts_requests_until_closed(self):
        """The gauge is 1 while a response is open and 0 once the server closed it."""
        with capture() as during:
            result = Middleware(hello)(environ(), Server().start_response)
        with capture() as after:
            result.close()
        assert 1 == during.value(ACTIVE, BASE_TAGS)
        assert 0 == after.value(ACTIVE, BASE_TAGS)

    def test_exact_under_concurrency(self):
        """Many threads serving at once: every request counted, and the gauge settles at 0."""
        app = Middleware(hello)
        threads, per_thread = 8, 300

        def worker():
            server = Server()
            for _ in range(per_thread):
                server.serve(app)

        with capture() as captured:
            pool = [threading.Thread(target=worker) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
        assert threads * per_thread == captured.histogram(
            DURATION, {**BASE_TAGS, "http.response.status_code": 200}).count
        assert 0 == captured.value(ACTIVE, BASE_TAGS)

    def test_unclosed_response_is_finished_when_dropped(self):
        """A server that never calls close() does not leave the request active forever."""
        with capture() as captured:
            result = Middleware(hello)(environ(), Server().start_response)
            list(result)
            del result
        assert 0 == captured.value(ACTIVE, BASE_TAGS)
        assert 1 == captured.histogram(DURATION, {**BASE_TAGS, "http.response.status_code": 200}).count


@pytest.fixture
def auto_wsgi():
    instrument.auto.install(include=["wsgi"])
    yield
    instrument.auto.uninstall(["wsgi"])


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class Running:
    """A wsgiref server on 127.0.0.1 serving an app in a thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        """Stop serving; returns once the last request, its close() included, is done."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(5)
            self.server.server_close()


@pytest.fixture
def serve(auto_wsgi):
    """serve(app) -> a `Running` server, stopped at the end of the test at the latest."""
    running = []

    def start(app):
        running.append(Running(app))
        return running[-1]

    yield start
    for server in running:
        server.stop()


class TestAutoInstall:
    def test_wsgiref_serves_the_wrapped_app(self, serve):
        """make_server() under auto-instrumentation: real requests measured with Content-Length intact."""
        server = serve(hello)
        with capture() as captured:
            responses = [requests.get(server.url + "/x", timeout=10) for _ in range(3)]
            server.stop()
        assert [("5", 200)] * 3 == [(r.headers.get("Content-Length"), r.status_code) for r in responses]
        assert 3 == captured.histogram(DURATION, {**BASE_TAGS, "http.response.status_code": 200}).count

    def test_hand_wrapped_app_counted_once(self, serve):
        """An app the user wrapped, served by a hooked server: one record per request."""
        server = serve(Middleware(hello))
        with capture() as captured:
            requests.get(server.url, timeout=10)
            server.stop()
        assert {(200,): 1} == requests_by(captured, "http.response.status_code")

    def test_flask_route_template_counted_once(self, serve):
        """Flask served by wsgiref: both hooks see the request, one records it, with the rule as route."""
        require_module("flask")
        from .wsgi_flask import app

        server = serve(app)
        with capture() as captured:
            for path in ["/items/1", "/items/2", "/users/ada/orders", "/nowhere", "/boom"]:
                requests.get(server.url + path, timeout=10)
            server.stop()
        assert {
            ("/items/<int:item_id>", 200, None): 2,
            ("/users/<name>/orders", 200, None): 1,
            (None, 404, None): 1,
            ("/boom", 500, "ZeroDivisionError"): 1,
        } == requests_by(captured, "http.route", "http.response.status_code", "error.type")

    def test_flask_called_directly_is_measured(self, auto_wsgi):
        """A Flask app called by a server instrument does not hook is measured by Flask's own hook."""
        require_module("flask")
        from .wsgi_flask import app

        with capture() as captured:
            assert b'{"item":7}\n' == Server().serve(app, environ(path="/items/7"))
        assert {("/items/<int:item_id>", 200): 1} == requests_by(captured, "http.route", "http.response.status_code")

    def test_uninstall_restores_the_originals(self):
        """After uninstall, servers and frameworks are exactly as they were."""
        require_module("flask")
        from wsgiref.simple_server import WSGIServer

        import flask

        before = (WSGIServer.set_app, flask.Flask.__call__)
        instrument.auto.install(include=["wsgi"])
        patched = (WSGIServer.set_app, flask.Flask.__call__)
        instrument.auto.uninstall(["wsgi"])
        assert before != patched
        assert before == (WSGIServer.set_app, flask.Flask.__call__)


def fake_uwsgi(**attributes):
    module = types.ModuleType("uwsgi")
    module.opt = {}
    module.has_threads = 1
    module.worker_id = lambda: 0  # the master, loading the application
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


@pytest.fixture
def uwsgi_state(monkeypatch):
    """_uwsgi's process state, fresh, in a runtime as fresh as a master that recorded nothing yet."""
    from instrument._runtime import RUNTIME
    from instrument.testing import reset

    reset()
    for name, value in [("_origin", None), ("_hooks_installed", False), ("_reset_in", None)]:
        monkeypatch.setattr(_uwsgi, name, value)
    resets = []
    monkeypatch.setattr(_uwsgi, "_flush_at_exit", lambda: resets.append("flush"))
    monkeypatch.setattr("instrument._pipeline.PIPELINE.after_fork_in_child", lambda: resets.append("reset"))
    monkeypatch.setattr(_uwsgi, "_guard_stop_signals", lambda: None)  # a worker's signal guard: not here
    yield resets
    RUNTIME.release()
    reset()


class TestUwsgiHooks:
    def test_applications_from_options(self):
        """--module/--wsgi/--mount name the modules whose callables get wrapped, factories included."""
        module = fake_uwsgi(opt={"module": b"app", "wsgi": [b"pkg.web:make_app()"], "callable": b"api",
                                 "mount": b"/admin=admin.site:wsgi", "wsgi-file": b"/srv/x.py"})
        assert [("app", "api", False), ("pkg.web", "make_app", True), ("admin.site", "wsgi", False)] == \
            _uwsgi.applications(module)

    def test_threads_held_in_master_released_in_worker(self, uwsgi_state, monkeypatch):
        """The master starts no thread; a forked worker resets its pipeline once and starts its own."""
        from instrument._runtime import RUNTIME

        started = []
        monkeypatch.setattr(RUNTIME.pipeline, "ensure_started", lambda: started.append(os.getpid()))
        monkeypatch.setattr(_uwsgi, "_guard_stop_signals", lambda: started.append("guarded"))
        _uwsgi.prepare(fake_uwsgi())
        RUNTIME.ensure_started()  # the first record, in the master: held
        assert ([], True) == (started, RUNTIME.held)
        monkeypatch.setattr(_uwsgi, "_origin", -1)  # as seen from a worker forked from it
        RUNTIME.ensure_started()  # a worker whose post-fork hook did not run
        _uwsgi.after_fork()  # its post-fork hook, late: nothing more to do
        assert ["reset"] == uwsgi_state
        assert ["guarded", os.getpid()] == started
        assert not RUNTIME.held

    def test_post_fork_and_atexit_hooks_chain(self, uwsgi_state):
        """Existing post_fork_hook and atexit run too, after our reset and before our flush."""
        module = fake_uwsgi(post_fork_hook=lambda: uwsgi_state.append("theirs"),
                            atexit=lambda: uwsgi_state.append("exit"))
        _uwsgi.prepare(module)
        _uwsgi._origin = -1  # the hooks run in a forked worker
        module.post_fork_hook()
        module.atexit()
        assert ["reset", "theirs", "exit", "flush"] == uwsgi_state

    def test_post_fork_joins_uwsgidecorators_chain(self, uwsgi_state, monkeypatch):
        """With uwsgidecorators imported, the reset goes first in its postfork chain."""
        decorators = types.ModuleType("uwsgidecorators")
        decorators.postfork_chain = [print]
        monkeypatch.setitem(sys.modules, "uwsgidecorators", decorators)
        _uwsgi.prepare(fake_uwsgi())
        assert [_uwsgi.after_fork, print] == decorators.postfork_chain

    def test_warns_once_without_threads(self, uwsgi_state, caplog):
        """uwsgi without threads (older releases): one warning naming the option to add."""
        with caplog.at_level(logging.WARNING, logger="instrument"):
            _uwsgi.prepare(fake_uwsgi(has_threads=0))
        assert 1 == sum("--enable-threads" in r.getMessage() for r in caplog.records)

    def test_warns_about_skip_atexit(self, uwsgi_state, caplog):
        """--skip-atexit loses the last interval of a worker stopped by a signal: said once."""
        with caplog.at_level(logging.WARNING, logger="instrument"):
            _uwsgi.prepare(fake_uwsgi(opt={"skip-atexit": True}))
        assert 1 == sum("--skip-atexit" in r.getMessage() for r in caplog.records)


class TestReviewedEdges:
    def test_abandoned_iteration_closes_the_application_once(self):
        """A server that stops iterating early and then closes: the app's close() runs once."""
        closed = []

        class Body:
            def __iter__(self):
                yield b"a"
                yield b"b"

            def close(self):
                closed.append(True)

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body()

        with capture():
            result = Middleware(app)(environ(), lambda *a: None)
            iterator = iter(result)
            next(iterator)
            del iterator  # the server gives up (client gone); the generator is collected
            result.close()
        assert [True] == closed

    def test_failure_before_the_first_chunk_is_a_500(self):
        """start_response("200") then a raise before any body: servers answer 500, so do we."""

        def app(environ, start_response):
            start_response("200 OK", [])

            def body():
                raise RuntimeError("late")
                yield b""  # pragma: no cover

            return body()

        with capture() as captured:
            with pytest.raises(RuntimeError):
                Server().serve(Middleware(app))
        assert {(500, "RuntimeError"): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_a_metric_name_clash_serves_the_request_unmeasured(self, caplog):
        """If the application already used our metric name for something else, requests still work."""
        from instrument._metrics import _metrics

        saved = _metrics.pop(ACTIVE, None)
        try:
            instrument.count(ACTIVE)  # the application's own counter of that name
            wsgi._actives.clear()
            assert b"hello" == Server().serve(Middleware(hello))
            assert any("integration 'wsgi' failed to measure a request" in r.getMessage() for r in caplog.records)
        finally:
            _metrics.pop(ACTIVE, None)
            if saved is not None:
                _metrics[ACTIVE] = saved
            wsgi._actives.clear()

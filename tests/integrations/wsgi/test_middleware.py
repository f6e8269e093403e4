"""The WSGI middleware called directly: a request is measured once, from the call to close(), and
the application's behaviour, exceptions and response object reach the server unchanged."""

from __future__ import annotations

import sys
import threading
import time
import wsgiref.util

import pytest

import instrument
from instrument import _record
from instrument.integrations.wsgi import Middleware, _active, wrap
from instrument.testing import capture

from .fake_server import ACTIVE, BASE_TAGS, DURATION, Server, environ, hello, requests_by


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


def recalling_start_response(environ, start_response):
    """An application that starts a 200, fails, and calls start_response again with exc_info."""
    start_response("200 OK", [])
    try:
        raise KeyError("late")
    except KeyError:
        start_response("500 Internal Server Error", [], sys.exc_info())
    return [b"error page"]


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
        server = Server()
        with capture() as captured:
            assert b"error page" == server.serve(Middleware(recalling_start_response))
        assert KeyError is server.calls[1][2][0]  # the server got the exc_info
        assert {(500, "500"): 1} == requests_by(captured, "http.response.status_code", "error.type")

    def test_exc_info_recall_after_headers_sent_reraises(self):
        """When the server re-raises exc_info (headers already sent), the original exception propagates."""
        with capture() as captured:
            with pytest.raises(KeyError, match="late"):
                Server(refuse_exc_info=True).serve(Middleware(recalling_start_response))
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
        assert app is wrap(app)
        assert isinstance(wrap(hello), Middleware)

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
            _active.forget()
            assert b"hello" == Server().serve(Middleware(hello))
            assert any("integration 'wsgi' failed to measure a request" in r.getMessage() for r in caplog.records)
        finally:
            _metrics.pop(ACTIVE, None)
            if saved is not None:
                _metrics[ACTIVE] = saved
            _active.forget()

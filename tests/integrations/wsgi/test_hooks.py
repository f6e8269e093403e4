"""The server and framework hooks installed in this process (wsgiref, Flask): real requests
measured once, with the route template; uninstalling restores the originals."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests

import instrument.auto
from instrument.integrations.wsgi import Middleware
from instrument.testing import capture

from ...helpers import require_module
from .fake_server import BASE_TAGS, DURATION, Server, environ, hello, requests_by


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
        from ..wsgi_flask import app

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
        from ..wsgi_flask import app

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

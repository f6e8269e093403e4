"""The ASGI middleware called directly, as a server calls it: a request is measured once, from
the call to its last body message (or the client's disconnect), and messages, exceptions and
non-HTTP scopes reach the server and the application unchanged."""

from __future__ import annotations

import asyncio

import pytest

from instrument.integrations.asgi import Middleware, current, wrap
from instrument.testing import capture

DURATION = "http.server.request.duration"
ACTIVE = "http.server.active_requests"
BASE = {"http.request.method": "GET", "url.scheme": "http"}


def http_scope(method="GET", scheme="http"):
    return {"type": "http", "asgi": {"version": "3.0"}, "method": method, "scheme": scheme, "path": "/",
            "headers": []}


class Connection:
    """One connection as a server sees it: the messages the application sent, and what it receives."""

    def __init__(self, incoming=()):
        self.sent = []
        self.incoming = list(incoming) or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive(self):
        if self.incoming:
            return self.incoming.pop(0)
        await asyncio.sleep(3600)

    async def send(self, message):
        self.sent.append(message)

    def run(self, app, scope=None):
        asyncio.run(app(scope or http_scope(), self.receive, self.send))


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def durations(captured, **tags):
    return captured.histogram(DURATION, {**BASE, **tags})


class TestMiddleware:
    def test_one_measurement_with_method_scheme_and_status(self):
        """A request is one histogram record tagged method, scheme and status code; the messages
        reach the server as the application sent them."""
        connection = Connection()
        with capture() as captured:
            connection.run(Middleware(hello))
        assert 1 == durations(captured, **{"http.response.status_code": 200}).count
        assert [200, b"hello"] == [connection.sent[0]["status"], connection.sent[1]["body"]]

    def test_unknown_method_is_other_and_https_kept(self):
        """A made-up method is _OTHER; the scope's scheme is the url.scheme tag."""
        with capture() as captured:
            Connection().run(Middleware(hello), http_scope("BREW", "https"))
        assert 1 == captured.histogram(
            DURATION, {"http.request.method": "_OTHER", "url.scheme": "https", "http.response.status_code": 200}).count

    def test_wrapped_twice_counted_once(self):
        """Middleware(Middleware(app)), or a hook's wrap of a wrapped app: one record."""
        with capture() as captured:
            Connection().run(Middleware(Middleware(hello)))
            Connection().run(wrap(wrap(hello)))
        assert 2 == durations(captured, **{"http.response.status_code": 200}).count
        assert wrap(wrap(hello)).app is hello

    def test_streamed_body_measured_to_its_last_message(self):
        """The clock stops at the last body message, not when the first chunk goes out."""

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b"b"})
            await asyncio.sleep(0.3)  # after the response: background work, not the request's

        with capture() as captured:
            Connection().run(Middleware(app))
        histogram = durations(captured, **{"http.response.status_code": 200})
        assert 1 == histogram.count
        assert 0.1 <= histogram.max < 0.3

    def test_disconnect_ends_a_server_sent_stream(self):
        """An event stream that runs until the client goes away is measured to the disconnect."""

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            message = await receive()
            assert "http.disconnect" == message["type"]
            await asyncio.sleep(0.3)  # cleaning up after the client left

        incoming = [{"type": "http.disconnect"}]
        with capture() as captured:
            Connection(incoming).run(Middleware(app))
        histogram = durations(captured, **{"http.response.status_code": 200})
        assert (1, None) == (histogram.count, captured.find(DURATION)[0].tags.get("error.type"))
        assert histogram.max < 0.3

    def test_exception_propagates_and_is_a_500_with_its_class(self):
        """An application that raises before responding: the same exception reaches the server,
        recorded as a 500 with error.type."""
        error = ZeroDivisionError("boom")

        async def app(scope, receive, send):
            raise error

        with capture() as captured, pytest.raises(ZeroDivisionError) as raised:
            Connection().run(Middleware(app))
        assert raised.value is error
        assert 1 == durations(captured, **{"http.response.status_code": 500, "error.type": "ZeroDivisionError"}).count

    def test_500_then_raise_records_the_exception(self):
        """A framework that sends its 500 page and then raises (Starlette): the exception's class
        is the error.type, the duration ends with the page."""

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"error page"})
            raise KeyError("view")

        with capture() as captured, pytest.raises(KeyError):
            Connection().run(Middleware(app))
        assert 1 == durations(captured, **{"http.response.status_code": 500, "error.type": "KeyError"}).count

    def test_handled_500_is_an_error_by_its_code(self):
        """A 5xx response without an exception has its status code as error.type."""

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        with capture() as captured:
            Connection().run(Middleware(app))
        assert 1 == durations(captured, **{"http.response.status_code": 503, "error.type": "503"}).count

    @pytest.mark.parametrize("kind", ["lifespan", "websocket"])
    def test_other_scopes_pass_through_unmeasured(self, kind):
        """lifespan and websocket: the application gets the server's own receive and send."""
        seen = []

        async def app(scope, receive, send):
            seen.append((receive, send, current()))

        connection = Connection()
        with capture() as captured:
            connection.run(Middleware(app), {"type": kind})
        assert [(connection.receive, connection.send, None)] == seen
        assert [] == captured.find(DURATION)

    def test_active_requests_while_served(self):
        """http.server.active_requests is 1 while the request runs and 0 after."""
        seen = []

        async def app(scope, receive, send):
            seen.append(current().active._series.value)
            await hello(scope, receive, send)

        with capture() as captured:
            Connection().run(Middleware(app))
        assert [1] == seen
        assert 0 == captured.value(ACTIVE, BASE)

    def test_request_is_current_in_tasks_it_starts_only(self):
        """The request is visible to the application and its tasks, and gone once it returns."""
        seen = []

        async def app(scope, receive, send):
            seen.append(await asyncio.create_task(asyncio.sleep(0, current())) is not None)
            await hello(scope, receive, send)

        Connection().run(Middleware(app))
        assert [True] == seen
        assert current() is None

    def test_rejects_what_is_not_callable(self):
        """A clear error at wrapping time."""
        with pytest.raises(TypeError, match="ASGI application"):
            Middleware("app:main")


class TestWsgiWrapLeavesAsgiApps:
    def test_an_asgi_app_is_not_wrapped_as_wsgi(self):
        """gunicorn's uvicorn worker loads an ASGI app through wsgi(): the WSGI hook leaves it as it is."""
        from instrument.integrations import wsgi

        app = Middleware(hello)
        assert (hello, app) == (wsgi.wrap(hello), wsgi.wrap(app))


class TestWhatTheServerSees:
    def test_a_malformed_message_reaches_the_server_as_it_is(self):
        """An application that sends something that is not a message: the server's own error, unchanged."""

        class Refusing(Connection):
            async def send(self, message):
                raise TypeError(f"server: {message!r} is not a message")

        async def app(scope, receive, send):
            await send(["not", "a", "dict"])

        with pytest.raises(TypeError, match=r"server: \['not', 'a', 'dict'\] is not a message"):
            Refusing().run(Middleware(app))

    @pytest.mark.parametrize("kind", ["http", "websocket", "lifespan"])
    @pytest.mark.parametrize("sessions", [False, True])
    def test_what_the_application_returns_reaches_the_server(self, kind, sessions):
        """An ASGI application should return None; uvicorn logs the value one returns instead and
        closes the connection, so the value reaches it as it is, measured or not, through the
        middleware, two of them, and a framework's hook (uvicorn's own test_value_returned
        found it dropped)."""
        import instrument
        from instrument.integrations.asgi import measured_call

        class Framework:
            async def __call__(self, scope, receive, send):
                await hello(scope, receive, send)
                return 123

        incoming = [{"type": f"{kind}.connect"}] if kind != "http" else ()
        instrument.configure(websocket_sessions=sessions)
        try:
            with capture():
                for app in (Middleware(Framework()), Middleware(Middleware(Framework())),
                            measured_call(Framework.__call__).__get__(Framework())):
                    connection = Connection(incoming)
                    assert 123 == asyncio.run(app({**http_scope(), "type": kind}, connection.receive,
                                                  connection.send))
        finally:
            instrument.configure(websocket_sessions=False)

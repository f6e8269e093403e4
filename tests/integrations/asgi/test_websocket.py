"""Websocket sessions, with the ``websocket_sessions`` option: each session one record of its own
metric, from the call to its close, with the handshake's answer, the close code and the
messages each way; never an HTTP request. Off (the default), a websocket scope passes through
untouched. Called as a server calls the middleware, then served by a real uvicorn."""

from __future__ import annotations

import asyncio
import signal

import pytest

import instrument
from instrument.integrations.asgi import Middleware, current
from instrument.testing import capture

from ...helpers import require_module
from ..wsgi_servers import Served, server_binary
from .test_middleware import Connection

DURATION = "websocket.server.session.duration"
MESSAGES = "websocket.server.messages"
ACTIVE = "websocket.server.active_sessions"
REQUESTS = "http.server.request.duration"
SESSION_NAMES = {DURATION, MESSAGES, ACTIVE}


def ws_scope(scheme="ws"):
    return {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": scheme, "path": "/chat?token=secret",
            "query_string": b"token=secret", "headers": [], "subprotocols": []}


def client_says(*texts, close=None):
    """What the client sends: the connect, *texts*, then a disconnect (with *close* as its code)."""
    disconnect = {"type": "websocket.disconnect"} if close is None else {"type": "websocket.disconnect", "code": close}
    return [{"type": "websocket.connect"}, *({"type": "websocket.receive", "text": t} for t in texts), disconnect]


async def echo(scope, receive, send):
    """Accept, echo every text until the client goes."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message["text"].upper()})


@pytest.fixture
def sessions_on():
    instrument.configure(websocket_sessions=True)
    yield
    instrument.configure(websocket_sessions=False)


def session(captured, **tags):
    return captured.histogram(DURATION, {"url.scheme": "ws", **tags})


@pytest.mark.usefixtures("sessions_on")
class TestSessions:
    def test_a_session_the_client_closes(self):
        """Accepted (101), two messages each way, closed by the client with 1001: one record; the
        application saw the messages unchanged."""
        connection = Connection(client_says("a", "b", close=1001))
        with capture() as captured:
            connection.run(Middleware(echo), ws_scope())
        assert 1 == session(captured, **{"http.response.status_code": 101, "websocket.close.code": 1001}).count
        assert 2 == captured.value(MESSAGES, {"url.scheme": "ws", "websocket.message.direction": "received"})
        assert 2 == captured.value(MESSAGES, {"url.scheme": "ws", "websocket.message.direction": "sent"})
        assert [{"type": "websocket.accept"}, {"type": "websocket.send", "text": "A"},
                {"type": "websocket.send", "text": "B"}] == connection.sent
        assert [] == captured.find(REQUESTS)

    def test_a_disconnect_without_a_code_is_1005(self):
        with capture() as captured:
            Connection(client_says()).run(Middleware(echo), ws_scope("wss"))
        assert 1 == captured.histogram(DURATION, {"url.scheme": "wss", "http.response.status_code": 101,
                                                  "websocket.close.code": 1005}).count
        assert [] == captured.find(MESSAGES)

    def test_the_application_closes_with_its_code(self):
        async def app(scope, receive, send):
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4000, "reason": "bye"})

        with capture() as captured:
            Connection(client_says()).run(Middleware(app), ws_scope())
        assert 1 == session(captured, **{"http.response.status_code": 101, "websocket.close.code": 4000}).count

    def test_a_handshake_closed_before_accepting_is_refused(self):
        """Servers answer 403 to a close before the accept; the close code is the application's."""
        async def app(scope, receive, send):
            await receive()
            await send({"type": "websocket.close"})

        with capture() as captured:
            Connection(client_says()).run(Middleware(app), ws_scope())
        assert 1 == session(captured, **{"http.response.status_code": 403, "websocket.close.code": 1000}).count

    def test_a_denial_response_has_its_status(self):
        """The websocket denial response extension: its status, measured to its last body message."""
        async def app(scope, receive, send):
            await receive()
            await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
            await send({"type": "websocket.http.response.body", "body": b"no"})

        with capture() as captured:
            Connection(client_says()).run(Middleware(app), ws_scope())
        assert 1 == session(captured, **{"http.response.status_code": 401}).count

    def test_an_exception_is_the_error_and_still_raised(self):
        """Raised after the accept: error.type, status 101; before any answer: 500 as for requests."""
        async def late(scope, receive, send):
            await receive()
            await send({"type": "websocket.accept"})
            raise ConnectionAbortedError("the application gave up")

        async def early(scope, receive, send):
            raise KeyError("before the handshake")

        with capture() as captured:
            with pytest.raises(ConnectionAbortedError):
                Connection(client_says()).run(Middleware(late), ws_scope())
            with pytest.raises(KeyError):
                Connection(client_says()).run(Middleware(early), ws_scope())
        aborted = {"http.response.status_code": 101, "error.type": "ConnectionAbortedError"}
        assert 1 == session(captured, **aborted).count
        assert 1 == session(captured, **{"http.response.status_code": 500, "error.type": "KeyError"}).count

    def test_active_sessions_while_open_and_none_after(self):
        seen = []

        async def app(scope, receive, send):
            await receive()
            await send({"type": "websocket.accept"})
            seen.append(current().active._series.value)
            await receive()

        with capture() as captured:
            Connection(client_says()).run(Middleware(app), ws_scope())
        assert [1] == seen
        assert 0 == captured.value(ACTIVE, {"url.scheme": "ws"})

    def test_a_close_code_given_as_an_int_enum_is_its_number(self):
        """wsproto (uvicorn's and hypercorn's websocket library) gives the client's close code
        as an IntEnum member: the tag is the plain number."""
        import enum

        class Close(enum.IntEnum):
            GOING_AWAY = 1001

        with capture() as captured:
            Connection([{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": Close.GOING_AWAY}]).run(
                Middleware(echo), ws_scope())
        point = captured.one(DURATION, {"url.scheme": "ws", "http.response.status_code": 101,
                                        "websocket.close.code": 1001})
        assert int is type(point.tags["websocket.close.code"])

    def test_the_tags_hold_nothing_of_the_path_query_or_messages(self):
        with capture() as captured:
            Connection(client_says("card 4111 1111 1111 1111")).run(Middleware(echo), ws_scope())
        text = repr(captured.points)
        assert "secret" not in text and "chat" not in text and "4111" not in text


def test_off_by_default_a_session_passes_through_untouched():
    """Without the option the application gets the server's own receive and send, and nothing
    is recorded."""
    seen = []

    async def app(scope, receive, send):
        seen.append((receive, send))
        await echo(scope, receive, send)

    connection = Connection(client_says("a"))
    with capture() as captured:
        connection.run(Middleware(app), ws_scope())
    assert [(connection.receive, connection.send)] == seen
    assert set() == SESSION_NAMES & set(captured.names())


class TestUvicorn:
    def test_fastapi_websocket_sessions_with_their_route(self, tmp_path):
        """A real uvicorn under ``instrument run --websocket-sessions true``: FastAPI's websocket
        route template is the http.route; sessions and messages exact; no HTTP request recorded
        for them, and the HTTP requests still are."""
        require_module("fastapi")
        aiohttp = require_module("aiohttp")
        command = [server_binary("uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
                   "tests.integrations.asgi_apps:api"]
        with Served(tmp_path, command, env={"INSTRUMENT_WEBSOCKET_SESSIONS": "true"}) as server:

            async def talk():
                async with aiohttp.ClientSession() as client:
                    for room in ("lobby", "kitchen"):
                        async with client.ws_connect(server.url(f"/rooms/{room}/ws")) as ws:
                            for text in ("one", "two", "three"):
                                await ws.send_str(text)
                                assert text.upper() == (await ws.receive()).data
                    async with client.get(server.url("/loans/7")) as response:
                        assert 200 == response.status

            asyncio.run(talk())
            assert server.stop() in (0, -signal.SIGTERM), server.output()
        points = server.points()
        sessions = [p for p in points if p["name"] == DURATION]
        assert {("/rooms/{room}/ws", 101, 1000)} == {
            (p["tags"]["http.route"], p["tags"]["http.response.status_code"], p["tags"]["websocket.close.code"])
            for p in sessions
        }, server.output()
        assert 2 == sum(p["count"] for p in sessions)
        assert {"received": 6, "sent": 6} == {
            direction: sum(p["value"] for p in points
                           if p["name"] == MESSAGES and p["tags"]["websocket.message.direction"] == direction)
            for direction in ("received", "sent")
        }
        assert {"/loans/{loan_id}"} == {p["tags"].get("http.route") for p in points if p["name"] == REQUESTS}
        assert 0 == [p["value"] for p in points if p["name"] == ACTIVE][-1]

"""aiohttp against real servers on 127.0.0.1: the client records each attempt once (redirect
hops and failures included), the server each request to the end of its response with its
resource's canonical path; objects, results and exceptions are aiohttp's own."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

import instrument.auto
from instrument.testing import capture

from ..helpers import require_module
from .http_server import Server, closed_port

aiohttp = require_module("aiohttp")
from aiohttp import web  # noqa: E402

CLIENT = "http.client.request.duration"
SERVER = "http.server.request.duration"
SESSION = "websocket.server.session.duration"
STREAM_PAUSE = 0.2


@pytest.fixture(autouse=True)
def instrumented():
    # Every HTTP client layer at once: an aiohttp attempt must still be counted once.
    instrument.auto.install(include=["aiohttp_client", "aiohttp_server", "http_client", "urllib3", "requests"])
    yield
    instrument.auto.uninstall()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


def attempts(captured):
    """{(method, status, error.type): count} of the client metric."""
    found = {}
    for point in captured.find(CLIENT):
        key = (point.tags["http.request.method"], point.tags.get("http.response.status_code"),
               point.tags.get("error.type"))
        found[key] = found.get(key, 0) + point.histogram.count
    return found


def served(captured):
    """{(route, status, error.type): count} of the server metric."""
    found = {}
    for point in captured.find(SERVER):
        key = (point.tags.get("http.route"), point.tags.get("http.response.status_code"), point.tags.get("error.type"))
        found[key] = found.get(key, 0) + point.histogram.count
    return found


async def get(session, url, **kwargs):
    async with session.get(url, **kwargs) as response:
        return response.status, await response.read(), type(response)


class TestClient:
    def test_statuses_and_server_tags(self, server):
        """200, 404 and 500: one attempt each, tagged with the server; >= 400 has its code as error.type."""

        async def main():
            async with aiohttp.ClientSession() as session:
                return [await get(session, server.url(path)) for path in ("/ok", "/notfound", "/error")]

        with capture() as captured:
            results = asyncio.run(main())
        assert [200, 404, 500] == [status for status, _, _ in results]
        assert (b"hello", aiohttp.ClientResponse) == results[0][1:]
        assert {("GET", 200, None): 1, ("GET", 404, "404"): 1, ("GET", 500, "500"): 1} == attempts(captured)
        assert {"server.address": "127.0.0.1", "server.port": server.port} == {
            key: captured.find(CLIENT)[0].tags[key] for key in ("server.address", "server.port")}

    def test_redirect_hops_each_counted(self, server):
        """A redirect followed: the 302 hop and the 200 hop, once each."""

        async def main():
            async with aiohttp.ClientSession() as session, session.get(server.url("/redirect")) as response:
                return len(response.history), response.status

        with capture() as captured:
            assert (1, 200) == asyncio.run(main())
        assert {("GET", 302, None): 1, ("GET", 200, None): 1} == attempts(captured)

    def test_connection_refused_is_an_attempt_with_aiohttp_error(self):
        """Nothing listening: aiohttp's own exception reaches the program, its class the error.type."""

        async def main():
            async with aiohttp.ClientSession() as session:
                await get(session, f"http://127.0.0.1:{closed_port()}/")

        with capture() as captured, pytest.raises(aiohttp.ClientConnectorError):
            asyncio.run(main())
        assert {("GET", None, "aiohttp.client_exceptions.ClientConnectorError"): 1} == attempts(captured)

    def test_attempt_ends_at_headers_not_body(self, server):
        """The attempt ends when the headers arrive; a body the server takes 0.3 s to send is the program's read."""

        async def main():
            async with aiohttp.ClientSession() as session:
                return await get(session, server.url("/slowbody"))

        with capture() as captured:
            assert b"chunk" * 3 == asyncio.run(main())[1]
        assert captured.find(CLIENT)[0].histogram.max < 0.3


def make_app():
    async def loan(request):
        return web.json_response({"loan": int(request.match_info["loan_id"])})

    async def boom(request):
        raise KeyError("missing in a handler")

    async def stream(request):
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first chunk\n")
        await asyncio.sleep(STREAM_PAUSE)
        await response.write(b"last chunk\n")
        await response.write_eof()
        return response

    async def room(request):
        """Echo texts upper-cased until the client closes; a handshake to room 'closed' is refused."""
        if request.match_info["room"] == "closed":
            raise web.HTTPForbidden()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data.upper())
        return ws

    app = web.Application()
    app.router.add_get("/loans/{loan_id}", loan)
    app.router.add_get("/rooms/{room}/ws", room)
    app.router.add_get("/boom", boom)
    app.router.add_get("/stream", stream)
    return app


@contextlib.asynccontextmanager
async def serving():
    """`make_app` served on 127.0.0.1 for the block; its port."""
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


async def serve_and_call(paths):
    """Serve `make_app` and GET each path with an aiohttp client; the (status, body) pairs."""
    async with serving() as port, aiohttp.ClientSession() as session:
        return [(await get(session, f"http://127.0.0.1:{port}{path}"))[:2] for path in paths]


async def serve_and_talk(rooms):
    """Serve `make_app`; open a websocket to each room, say two things and close."""
    async with serving() as port, aiohttp.ClientSession() as session:
        for room in rooms:
            try:
                async with session.ws_connect(f"http://127.0.0.1:{port}/rooms/{room}/ws") as ws:
                    for text in ("one", "two"):
                        await ws.send_str(text)
                        assert text.upper() == (await ws.receive()).data
            except aiohttp.WSServerHandshakeError as exc:
                assert 403 == exc.status


class TestServer:
    def test_routes_statuses_and_errors(self):
        """The resource's canonical path is http.route; a handler that raises is a 500 with its class;
        no route is no tag; each request is counted once by the server and once by the client."""
        paths = ["/loans/1", "/loans/2", "/nowhere", "/boom"]
        with capture() as captured:
            results = asyncio.run(serve_and_call(paths))
        assert [200, 200, 404, 500] == [status for status, _ in results]
        assert {("/loans/{loan_id}", 200, None): 2, (None, 404, None): 1, ("/boom", 500, "KeyError"): 1} == \
            served(captured)
        assert 4 == sum(attempts(captured).values())
        assert 0 == captured.value("http.server.active_requests", {"http.request.method": "GET", "url.scheme": "http"})

    def test_stream_measured_to_its_end(self):
        """A StreamResponse that takes STREAM_PAUSE to write: the duration covers it."""
        with capture() as captured:
            started = time.monotonic()
            assert [(200, b"first chunk\nlast chunk\n")] == asyncio.run(serve_and_call(["/stream"]))
            assert time.monotonic() - started >= STREAM_PAUSE
        tags = {"http.request.method": "GET", "url.scheme": "http", "http.response.status_code": 200,
                "http.route": "/stream"}
        assert captured.histogram(SERVER, tags).min >= STREAM_PAUSE

    def test_websocket_sessions_are_never_requests(self):
        """Off (the default): a websocket session is served unmeasured. With websocket_sessions:
        one record each, as ASGI sessions are; a refused handshake is one with its status."""
        with capture() as captured:
            asyncio.run(serve_and_talk(["lobby"]))
        assert {} == served(captured)
        assert [] == captured.find(SESSION)
        instrument.configure(websocket_sessions=True)
        try:
            with capture() as captured:
                asyncio.run(serve_and_talk(["lobby", "kitchen", "closed"]))
        finally:
            instrument.configure(websocket_sessions=False)
        assert {} == served(captured)
        assert 2 == captured.histogram(SESSION, {"url.scheme": "ws", "http.route": "/rooms/{room}/ws",
                                                 "http.response.status_code": 101,
                                                 "websocket.close.code": 1000}).count
        assert 1 == captured.histogram(SESSION, {"url.scheme": "ws", "http.route": "/rooms/{room}/ws",
                                                 "http.response.status_code": 403}).count
        assert 0 == captured.value("websocket.server.active_sessions", {"url.scheme": "ws"})

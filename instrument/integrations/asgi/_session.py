"""One websocket session being measured, as its own metrics, never as an HTTP request.

A websocket session lasts as long as its client stays: as a request it would swamp the
latencies of ``http.server.request.duration``. With the ``websocket_sessions`` option a
`Session` stands between the server and the application for one ``websocket`` scope (off,
the scope passes through untouched): its `send` and `receive` pass every message through
unchanged and note the handshake's answer, the messages and the close. It is recorded once
(`finish`), whichever comes first: the ``websocket.close`` the application sends, the
``websocket.disconnect`` it receives, the end of a denial response, or the application's
return or exception.

* ``websocket.server.session.duration`` (s), from the call into the application to that
  end, tagged ``url.scheme`` (``ws``, ``wss``), ``http.route`` (as for requests: Starlette's
  and FastAPI's route template), ``http.response.status_code`` (101 once accepted; 403 when
  closed before accepting, as servers answer; a denial response's own status; 500 when the
  application raised before any), ``websocket.close.code`` (the close's code: the
  application's, default 1000, or the client's from its disconnect, default 1005) and
  ``error.type`` (the class of an exception the application raised).
* ``websocket.server.messages`` ({message}), the messages of the session by
  ``websocket.message.direction`` (``received``, ``sent``), ``url.scheme`` and
  ``http.route``: counted in the session, recorded once at its end, so a chatty session
  costs one integer addition a message.
* ``websocket.server.active_sessions``: sessions in progress, per scheme, kept as
  ``http.server.active_requests`` is.

Never a message's content, a header, the path or the query string.
"""

from __future__ import annotations

from time import perf_counter_ns

from ..._metrics import COUNTER, TIMER, error_name
from .._failures import failed
from .._tagged import Tagged
from ..wsgi._active import active_count
from ._request import Message, Receive, Scope, Send

DURATION = "websocket.server.session.duration"
MESSAGES = "websocket.server.messages"
ACTIVE = "websocket.server.active_sessions"

session_duration = Tagged(
    DURATION,
    TIMER,
    "s",
    ("url.scheme", "http.route", "http.response.status_code", "websocket.close.code", "error.type"),
    integration=("asgi", "aiohttp_server"),
)
session_messages = Tagged(
    MESSAGES, COUNTER, "{message}", ("url.scheme", "http.route", "websocket.message.direction"), integration="asgi",
)

_SCHEMES = {"ws": "ws", "wss": "wss"}
_ACCEPTED = 101
_REFUSED = 403  # what servers answer a handshake the application closes before accepting
_CLOSED = 1000  # the close code of a websocket.close without one (ASGI)
_NO_CODE = 1005  # the code of a websocket.disconnect without one (ASGI: "no status received")


def _code(code: object) -> int | None:
    """A close code as a plain number: wsproto gives the client's as an IntEnum member."""
    return int(code) if isinstance(code, int) and not isinstance(code, bool) else None


class Session:
    """One websocket session being measured: the start time, the handshake's answer, the
    messages each way and the close."""

    __slots__ = (
        "_receive", "_send", "active", "close_code", "done", "handled", "prefix", "received", "route", "scheme",
        "sent", "start", "status",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.scheme = _SCHEMES.get(scope.get("scheme", "ws"), "_OTHER")
        self.status: int | None = None  # the handshake's answer, once sent
        self.close_code: int | None = None
        self.route: str | None = None  # set by a framework hook, as for a `Request`
        self.prefix = ""
        self.handled: str | None = None  # unused: a framework's handled exception is a request's
        self.sent = 0
        self.received = 0
        self.done = False
        active = self.active = active_count(ACTIVE, {"url.scheme": self.scheme}, "{session}")
        active.enter()
        self.start = perf_counter_ns()

    async def send(self, message: Message) -> None:
        """The server's ``send``, noting the handshake's answer, the messages and the close."""
        await self._send(message)
        try:
            kind = message["type"]
        except Exception:  # not a message: the server has said what is wrong with it
            return
        if kind == "websocket.send":
            self.sent += 1
        elif kind == "websocket.accept":
            self.status = _ACCEPTED
        elif kind == "websocket.close":
            if self.status is None:
                self.status = _REFUSED
            self.close_code = _code(message.get("code", _CLOSED))
            self.finish()
        elif kind == "websocket.http.response.start":  # the denial response extension
            status = message.get("status")
            self.status = status if type(status) is int else None
        elif kind == "websocket.http.response.body" and not message.get("more_body", False):
            self.finish()

    async def receive(self) -> Message:
        """The server's ``receive``, counting messages; the client's disconnect ends the session."""
        message = await self._receive()
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "websocket.receive":
            self.received += 1
        elif kind == "websocket.disconnect" and not self.done:
            self.close_code = _code(message.get("code", _NO_CODE))
            self.finish()
        return message

    def finish(self, exc: BaseException | None = None, returned: bool = False) -> None:
        """Record the session once. Never raises. (*returned*: the application returned; as
        `Request.finish` takes it.)"""
        if self.done:
            return
        self.done = True
        try:
            elapsed = perf_counter_ns() - self.start
            self.active.leave()
            error: str | None = None
            status = self.status
            if exc is not None:
                error = error_name(type(exc))
                if status is None:
                    status = 500
            scheme, route = self.scheme, self.route
            session_duration.record((scheme, route, status, self.close_code, error), elapsed)
            if self.received:
                session_messages.record((scheme, route, "received"), self.received)
            if self.sent:
                session_messages.record((scheme, route, "sent"), self.sent)
        except Exception:  # instrumentation never breaks the session
            failed("asgi", "record a websocket session", "that session is not recorded")

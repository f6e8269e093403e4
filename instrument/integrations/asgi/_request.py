"""One ASGI request being measured: what the application sent, its tags, and its one record.

A `Request` stands between the server and the application for one ``http`` scope: the
application gets its `send` and `receive`, which pass every message through unchanged
and note the response's status, its last body message and a client's disconnect. It is
recorded once (`finish`), whichever comes first: the last body message sent (``more_body``
false, or a ``http.response.pathsend``), the ``http.disconnect`` the application
receives when the client goes away (a server-sent event stream ends so), or the
application's return or exception.

While the application runs, the request is the value of a context variable (`current`),
which tasks the application starts inherit: an inner layer (a hand-made `Middleware`
inside a server's hook, Starlette's ``__call__`` under uvicorn's hook) finds it and only
calls through, and framework hooks add the route template to it. Nothing is written into
the scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from time import perf_counter_ns
from typing import Any, Protocol

from ..._metrics import error_name
from .._failures import failed
from .._methods import METHOD_TAGS, method_tag
from ..wsgi._active import active_requests
from ..wsgi._request import server_duration

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


_SCHEMES = {"http": "http", "https": "https"}
_method_tags = METHOD_TAGS  # a name of this module: see `wsgi._request`
_FINAL = "http.response.pathsend"  # the extension's one message is the whole body

class Connection(Protocol):
    """What is measured for one scope: a `Request`, or a websocket `_session.Session`."""

    route: str | None  # framework hooks set these two
    prefix: str
    handled: str | None  # an exception the framework turned into a response

    async def receive(self) -> Message: ...

    async def send(self, message: Message) -> None: ...

    def finish(self, exc: BaseException | None = None, returned: bool = False) -> None: ...


_current: ContextVar[Connection | None] = ContextVar("instrument.asgi_request", default=None)


def current() -> Connection | None:
    """The request (or websocket session) being measured in this context (this task, or the
    task that started it)."""
    return _current.get()


class Request:
    """One request being measured: the start time, what the application sent, the tags."""

    __slots__ = (
        "_receive", "_send", "active", "done", "ended", "handled", "method", "prefix", "route", "scheme", "start",
        "status",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        method = scope.get("method")
        self.method = _method_tags.get(method) or method_tag(method or "")
        self.scheme = _SCHEMES.get(scope.get("scheme", "http"), "_OTHER")
        self.status: int | None = None  # None until the response's start message went to the server
        self.route: str | None = None  # set by a framework hook
        self.prefix = ""  # the templates of the mounts routed through so far (Starlette)
        self.handled: str | None = None  # an exception the framework turned into a response
        self.done = False
        self.ended: int | None = None  # when a 5xx response's last body message went out
        active = self.active = active_requests(self.method, self.scheme)
        active.enter()
        self.start = perf_counter_ns()

    async def send(self, message: Message) -> None:
        """The server's ``send``, noting the status and the last body message."""
        try:
            kind = message["type"]
        except Exception:  # not a message: the server says what is wrong with it
            return await self._send(message)
        if kind == "http.response.start":
            await self._send(message)
            status = message.get("status")
            self.status = status if type(status) is int else None
            return
        await self._send(message)
        if (kind == "http.response.body" and not message.get("more_body", False)) or kind == _FINAL:
            if self.status is not None and self.status >= 500 and self.handled is None:
                # Frameworks send their 500 and then raise the exception (Starlette's
                # ServerErrorMiddleware): recorded when the application ends, with it.
                self.ended = perf_counter_ns()
            else:
                self.finish()

    async def receive(self) -> Message:
        """The server's ``receive``; a client's disconnect ends the request."""
        message = await self._receive()
        if not self.done and isinstance(message, dict) and message.get("type") == "http.disconnect":
            self.finish()
        return message

    def finish(self, exc: BaseException | None = None, returned: bool = False) -> None:
        """Record the request once. Never raises.

        *returned*: the application returned before the response was complete (a server
        answers 500 when it had not started one).
        """
        if self.done:
            return
        self.done = True
        try:
            elapsed = (self.ended or perf_counter_ns()) - self.start
            self.active.leave()
            code = self.status
            error: str | None = None
            if exc is not None:
                error = error_name(type(exc))
                if self.status is None:
                    code = 500  # what servers answer when the application raised before responding
            elif returned and self.status is None:
                code = 500
                error = "500"
            elif code is not None and code >= 500:
                error = self.handled or str(code)
            server_duration.record((self.method, self.scheme, code, self.route, error), elapsed)
        except Exception:  # instrumentation never breaks the request
            failed("asgi", "record a request", "that request is not recorded")


def enter(connection: Connection) -> Any:
    """Make *connection* the current one; the token to `leave` with."""
    return _current.set(connection)


def leave(token: Any) -> None:
    """Undo `enter`."""
    try:
        _current.reset(token)
    except ValueError:  # reset from another context: that context ends with the request
        _current.set(None)

"""What the HTTP client integrations share: the metric, its tags, and attempt ownership.

One measurement per attempt on the wire: ``http.client.request.duration`` (seconds)
tagged ``http.request.method``, ``server.address``, ``server.port``,
``http.response.status_code`` and, when it failed, ``error.type`` (the exception
class, or the status code for responses >= 400, as OpenTelemetry's HTTP conventions
say). Never the path, the query string, user info, headers or bodies.

Libraries are layered (requests -> urllib3 -> http.client). The outermost layer that
performs an attempt *owns* it: it sets a context variable for the attempt's duration,
and layers *below* it (lower `rank`) record nothing. A layer never defers to its own
rank, so a request made re-entrantly during an attempt (a signal handler, a logging
handler that posts, a ``__del__``) through the same library is recorded too. A
context variable (not a thread-local) so that asyncio tasks sharing a thread do not
see each other's attempts.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from time import perf_counter_ns

from .._metrics import TIMER, error_name
from .._suppress import suppressed
from ._tagged import Tagged

DURATION = "http.client.request.duration"
KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})

# Layer ranks: an attempt owned at one rank silences the ranks below it.
HTTP_CLIENT, URLLIB3, CLIENT_LIBRARY = 1, 2, 3  # CLIENT_LIBRARY: requests, httpx

_duration = Tagged(
    DURATION,
    TIMER,
    "s",
    ("http.request.method", "server.address", "server.port", "http.response.status_code", "error.type"),
    integration=("http_client", "httpx", "requests", "urllib3"),
)


def method_tag(method: object) -> str:
    """The method as OpenTelemetry tags it: a known method as is, anything else ``_OTHER``.

    Methods are case-sensitive (RFC 9110): ``get`` is not ``GET``, so it is ``_OTHER``.
    """
    if isinstance(method, bytes):
        method = method.decode("ascii", "replace")
    text = str(method)
    return text if text in KNOWN_METHODS else "_OTHER"


def host_tag(host: object) -> str:
    """A host name as a tag, in lower case as every layer gives it: never user info
    (``user:password@host`` reaches http.client from urllib.request and ``set_tunnel``)."""
    return str(host or "").rpartition("@")[2].lower()


class Attempt:
    """One attempt on the wire, owned by the layer that started it."""

    __slots__ = ("_token", "done", "host", "method", "port", "rank", "start")

    def __init__(self, method: str, host: str, port: int, rank: int) -> None:
        self.method = method
        self.host = host
        self.port = port
        self.rank = rank
        self._token: Token[Attempt | None] | None = None
        self.done = False
        self.start = perf_counter_ns()

    def release(self) -> None:
        """Stop owning the attempt (lower layers may record again); idempotent."""
        token, self._token = self._token, None
        if token is not None:
            try:
                _owner.reset(token)
            except ValueError:  # reset from another context: the owner there ends with it
                _owner.set(None)

    def finish(self, status: int | None = None, exc: BaseException | None = None) -> None:
        """Record the attempt once. Never raises."""
        if self.done:
            return
        self.done = True
        elapsed = perf_counter_ns() - self.start
        if exc is not None:
            error: str | None = error_name(type(exc))
        elif status is not None and status >= 400:
            error = str(status)
        else:
            error = None
        _duration.record((self.method, self.host, self.port, status, error), elapsed)


_owner: ContextVar[Attempt | None] = ContextVar("instrument.http_client_attempt", default=None)


def begin(
    method: object, host: object, port: int | str | None, *, rank: int, own: bool = True, independent: bool = False
) -> Attempt | None:
    """Start an attempt unless a higher layer owns one or this thread is suppressed.

    With *own*, lower layers skip until `Attempt.release()`. An *independent* attempt
    cannot be part of the owner's (it is on a connection the owner does not use).
    """
    if suppressed():
        return None
    owner = _owner.get()
    if owner is not None and owner.rank > rank and not independent:
        return None
    attempt = Attempt(method_tag(method), host_tag(host), int(port or 0), rank)
    if own:
        attempt._token = _owner.set(attempt)
    return attempt

"""What the HTTP client integrations share: the metric, its tags, and the attempt.

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
see each other's attempts. Threads marked by `_suppress` (the exporters') record
nothing at any layer.

Every integration performs an attempt the same way (`begin`, then `Attempt` as a
context manager around the call):

    attempt = begin(method, host, port, rank=URLLIB3)
    if attempt is None:  # a higher layer owns the attempt, or this thread is suppressed
        return original(...)
    with attempt:
        response = original(...)
        attempt.status = response.status
    return response
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from time import perf_counter_ns
from types import TracebackType

from .._metrics import TIMER, error_name
from .._suppress import suppressed
from ._methods import METHOD_TAGS, method_tag
from ._tagged import Tagged

DURATION = "http.client.request.duration"

# Layer ranks: an attempt owned at one rank silences the ranks below it.
HTTP_CLIENT, URLLIB3, CLIENT_LIBRARY = 1, 2, 3  # CLIENT_LIBRARY: requests, httpx

# A name of this module (see `wsgi._request`): calls on an imported name skip the method fast path.
_method_tags = METHOD_TAGS

_duration = Tagged(
    DURATION,
    TIMER,
    "s",
    ("http.request.method", "server.address", "server.port", "http.response.status_code", "error.type"),
    integration=("aiohttp_client", "http_client", "httpx", "requests", "urllib3"),
)


class Attempt:
    """One attempt on the wire, owned (unless begun with ``own=False``) by the layer that began it.

    As a context manager around the call performing it: leaving the block releases the
    attempt (lower layers record again) and records it, with the exception that ended
    the block if one did, else with `status`; after `finish_later()`, a block that
    ends normally leaves the recording to whoever calls `finish` (requests, once the
    body has been read). Layers that cannot wrap the attempt in one block (http.client,
    from ``putrequest`` to ``getresponse``) call `finish` themselves.
    """

    __slots__ = ("_token", "done", "host", "later", "method", "port", "rank", "start", "status")

    def __init__(self, method: str, host: str, port: int, rank: int) -> None:
        self.method = method
        self.host = host
        self.port = port
        self.rank = rank
        self._token: Token[Attempt | None] | None = None
        self.status: int | None = None  # set in the block: the response's status code
        self.later = False
        self.done = False
        self.start = perf_counter_ns()

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
        if exc is not None or not self.later:
            self.finish(self.status, exc)

    def finish_later(self) -> None:
        """Leave the recording of a block that ends normally to a later `finish`."""
        self.later = True

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
    # The host as a tag: lower case, as every layer gives it, and never user info
    # (``user:password@host`` reaches http.client from urllib.request and ``set_tunnel``).
    host_tag = str(host or "").rpartition("@")[2].lower()
    attempt = Attempt(_method_tags.get(method) or method_tag(method), host_tag, int(port or 0), rank)
    if own:
        attempt._token = _owner.set(attempt)
    return attempt

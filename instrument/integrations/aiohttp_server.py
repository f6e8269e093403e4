"""aiohttp's server: every request a ``web.Application`` serves, measured to the end of its response.

aiohttp is not ASGI: its connection handler (``web_protocol.RequestHandler``) calls the
application and then writes the response in ``_handle_request``, which is timed, so a
response is measured until it has been written (a ``StreamResponse`` until its handler
has written its end). Recorded as ASGI requests are (`instrument.integrations.asgi`):
``http.server.request.duration`` tagged method, scheme, status code, ``http.route`` (the
matched resource's canonical path, ``/loans/{loan_id}``) and ``error.type`` (the class of
an exception the handler raised, which aiohttp turns into a 500, or the 5xx code); and
``http.server.active_requests``. A request whose handler is cancelled (the client went
away) is recorded with ``error.type`` the cancellation and no status. A websocket
handshake's session is never an HTTP request: with ``websocket_sessions`` it is recorded
as ASGI's sessions are (without message counts), else served unmeasured.

``_handle_request`` and ``handle_error`` are aiohttp's internals (stable since 3.8): the
integration checks that both exist, and stays out otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter_ns
from types import ModuleType
from typing import Any

from .. import _record
from .._metrics import error_name
from . import Integration
from ._failures import failed
from ._methods import METHOD_TAGS, method_tag
from .asgi._session import ACTIVE as SESSIONS_ACTIVE
from .asgi._session import session_duration
from .wsgi._active import active_count, active_requests
from .wsgi._request import server_duration

IDENTIFIER = "aiohttp_server"
_SCHEMES = {"http": "http", "https": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss"}
_method_tags = METHOD_TAGS  # a name of this module: see `wsgi._request`

# The exception the handler raised, noted by `handle_error`, for the request of this task.
_noted: ContextVar[list[str | None] | None] = ContextVar("instrument.aiohttp_handled", default=None)


def _route(request: Any) -> str | None:
    match = request.match_info
    resource = getattr(getattr(match, "route", None), "resource", None) if match is not None else None
    canonical = getattr(resource, "canonical", None)
    return canonical if isinstance(canonical, str) else None


def _handle_request(original: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not _record.ENABLED:
            return await original(self, request, *args, **kwargs)
        if _is_websocket(request):
            return await _session(original, self, request, args, kwargs)
        try:
            method = _method_tags.get(request.method) or method_tag(request.method)
            scheme = _SCHEMES.get(request.scheme, "_OTHER")
            active = active_requests(method, scheme)
        except Exception:
            failed(IDENTIFIER, "measure a request", "requests are served unmeasured")
            return await original(self, request, *args, **kwargs)
        active.enter()
        noted: list[str | None] = [None]
        token = _noted.set(noted)
        start = perf_counter_ns()
        try:
            result = await original(self, request, *args, **kwargs)
        except BaseException as exc:
            elapsed = perf_counter_ns() - start
            active.leave()
            server_duration.record((method, scheme, None, _safe_route(request), error_name(type(exc))), elapsed)
            raise
        finally:
            _noted.reset(token)
        elapsed = perf_counter_ns() - start
        active.leave()
        try:
            code = result[0].status
            error = noted[0] or (str(code) if code >= 500 else None)
            server_duration.record((method, scheme, code, _route(request), error), elapsed)
        except Exception:
            failed(IDENTIFIER, "record a request", "that request is not recorded")
        return result

    return handle_request


def _is_websocket(request: Any) -> bool:
    """A websocket handshake: its session is never an HTTP request (`_session`)."""
    try:
        return bool(request.headers.get("Upgrade", "").lower() == "websocket")
    except Exception:
        return False


async def _session(original: Callable[..., Any], handler: Any, request: Any, args: Any, kwargs: Any) -> Any:
    """A websocket session: with ``websocket_sessions``, recorded as ASGI's are
    (`instrument.integrations.asgi._session`: duration, status, close code, error; aiohttp's
    messages are not counted); without it, served unmeasured, as ASGI's are."""
    from .._config import settings

    if not settings.current.websocket_sessions:
        return await original(handler, request, *args, **kwargs)
    try:
        scheme = _WS_SCHEMES.get(request.scheme, "_OTHER")
        active = active_count(SESSIONS_ACTIVE, {"url.scheme": scheme}, "{session}")
    except Exception:
        failed(IDENTIFIER, "measure a websocket session", "sessions are served unmeasured")
        return await original(handler, request, *args, **kwargs)
    active.enter()
    start = perf_counter_ns()
    try:
        result = await original(handler, request, *args, **kwargs)
    except BaseException as exc:
        elapsed = perf_counter_ns() - start
        active.leave()
        session_duration.record((scheme, _safe_route(request), None, None, error_name(type(exc))), elapsed)
        raise
    elapsed = perf_counter_ns() - start
    active.leave()
    try:
        response = result[0]
        code = getattr(response, "close_code", None)
        close = int(code) if isinstance(code, int) and not isinstance(code, bool) else None
        session_duration.record((scheme, _route(request), response.status, close, _handshake_error(response)), elapsed)
    except Exception:
        failed(IDENTIFIER, "record a websocket session", "that session is not recorded")
    return result


def _handshake_error(response: Any) -> str | None:
    """A 5xx answer to a handshake is an error, named by its code."""
    status = response.status
    return str(status) if status >= 500 else None


def _safe_route(request: Any) -> str | None:
    try:
        return _route(request)
    except Exception:
        return None


def _handle_error(original: Callable[..., Any]) -> Callable[..., Any]:
    def handle_error(self: Any, request: Any, status: int = 500, exc: BaseException | None = None,
                     *args: Any, **kwargs: Any) -> Any:
        noted = _noted.get()
        if noted is not None and exc is not None:
            noted[0] = error_name(type(exc))
        return original(self, request, status, exc, *args, **kwargs)

    return handle_error


class AiohttpServerIntegration(Integration):
    identifier = IDENTIFIER
    distribution = "aiohttp"
    min_version = (3, 8, 3)

    def setup(self, module: ModuleType) -> None:  # aiohttp.web_protocol
        handler = module.RequestHandler
        if not (hasattr(handler, "_handle_request") and hasattr(handler, "handle_error")):
            raise RuntimeError("aiohttp's RequestHandler has no _handle_request/handle_error to measure requests by")
        self.patch(handler, "_handle_request", _handle_request)
        self.patch(handler, "handle_error", _handle_error)

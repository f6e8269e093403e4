"""ASGI: every HTTP request a server hands to the application, measured once, to its end.

``Middleware(app)`` wraps any ASGI 3 application by hand; under auto-instrumentation one
integration per server or framework wraps the application that uvicorn (also its
``--workers`` and ``--reload`` processes, and gunicorn's uvicorn worker) and hypercorn
call, and Starlette's (so FastAPI's) and Django's own ASGI entry points, so an
application is measured whichever server runs it. Their identifiers are
``asgi.<module>``; ``asgi`` names them all (``--disable asgi``).

Metrics: the same as WSGI's (see `instrument.integrations.wsgi`):
``http.server.request.duration`` (seconds) tagged ``http.request.method``,
``url.scheme``, ``http.response.status_code``, ``http.route`` (Starlette's and FastAPI's
path template, with the templates of the mounts it is under; Django's route) and
``error.type``; and ``http.server.active_requests``.

Duration: from the call into the application until the last body message of the
response has been handed to the server (a streamed or server-sent response to its end),
until the client disconnects, or until the application returns or raises, whichever
comes first. ``lifespan`` and ``websocket`` scopes pass through untouched. Messages,
exceptions and the scope pass through unchanged; recording never raises.

The package, one job a module:

* `_middleware`: `serve` (measure one request, unless an outer layer does), `Middleware`, `wrap`
* `_request`: one request being measured, its `send` and `receive`, its tags and its record
* ``uvicorn``, ``hypercorn``, ``starlette``, ``fastapi``, ``django``: one integration each,
  registered in `instrument.integrations.REGISTRY`
"""

from __future__ import annotations

from ..wsgi._request import DURATION
from ._middleware import Application, Middleware, measured_call, serve, wrap
from ._request import Request, current

__all__ = ["DURATION", "Application", "Middleware", "Request", "current", "measured_call", "serve", "wrap"]

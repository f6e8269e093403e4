"""WSGI: every request a server hands to the application, measured once, to its end.

``Middleware(app)`` wraps an application by hand; under auto-instrumentation one
integration per server or framework wraps the application that gunicorn, uwsgi,
waitress or ``wsgiref.simple_server`` calls, and Flask's and Django's own WSGI entry
points, so a Flask or Django app is measured whichever server loads it. Their
identifiers are ``wsgi.<module>``; ``wsgi`` names them all (``--disable wsgi``).

Metrics (OpenTelemetry HTTP server conventions):

* ``http.server.request.duration`` (seconds), tagged ``http.request.method`` (known
  methods, anything else ``_OTHER``), ``url.scheme``, ``http.response.status_code``,
  ``http.route`` when the framework matched a route template (Flask's rule, Django's
  route; never the raw path) and ``error.type`` when the request failed: the class of
  an exception the application raised, or the status code of a 5xx response.
* ``http.server.active_requests`` (``{request}``), tagged method and scheme: requests
  in progress in this process (see `_active`).

Counted once: the outermost layer puts its request in the environ under `KEY`; an
inner layer (a Flask app served by gunicorn, a hand-made `Middleware` that the
server's hook wraps again) finds it there and only calls through. Framework hooks use
the same object (`current`) to report the route and a handled exception.

Duration: from the call into the application until the server calls ``close()`` on
the response iterable (PEP 3333 makes servers call it, after the last chunk or on
abort), or until iterating it raises (see `_body`). Exceptions from the application,
its iterable or its ``close()`` propagate unchanged; recording never raises.

The package, one job a module:

* `_middleware`: `serve` (measure one call, unless an outer layer does), `Middleware`, `wrap`
* `_request`: one request being measured, its tags and its record; `current`; what a
  stopping process waits for (`requests_sending`, `guard_stop_signals`)
* `_body`: the response iterable handed to the server, measured until it is closed
* `_active`: the count of requests in progress
* ``django``, ``flask``, ``gunicorn``, ``uwsgi``, ``waitress``, ``wsgiref``: one
  integration each, registered in `instrument.integrations.REGISTRY`
"""

from __future__ import annotations

from ._active import ACTIVE
from ._middleware import Application, Middleware, serve, wrap
from ._request import DURATION, KEY, Environ, Guard, StartResponse, current, guard_stop_signals, requests_sending

__all__ = [
    "ACTIVE",
    "DURATION",
    "KEY",
    "Application",
    "Environ",
    "Guard",
    "Middleware",
    "StartResponse",
    "current",
    "guard_stop_signals",
    "requests_sending",
    "serve",
    "wrap",
]

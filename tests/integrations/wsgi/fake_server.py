"""A WSGI server in a few lines, for tests that call the middleware directly."""

from __future__ import annotations

DURATION = "http.server.request.duration"
ACTIVE = "http.server.active_requests"
BASE_TAGS = {"http.request.method": "GET", "url.scheme": "http"}


def environ(method="GET", path="/", **extra):
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
           "wsgi.url_scheme": "http", "wsgi.version": (1, 0)}
    env.update(extra)
    return env


class Server:
    """A minimal WSGI server: calls the app, iterates the response, closes it."""

    def __init__(self, *, refuse_exc_info=False):
        self.calls = []
        self.refuse_exc_info = refuse_exc_info
        self.written = []

    def start_response(self, status, headers, exc_info=None):
        self.calls.append((status, headers, exc_info))
        if exc_info is not None and self.refuse_exc_info:
            raise exc_info[1].with_traceback(exc_info[2])  # "headers already sent"
        return self.written.append

    def serve(self, app, env=None):
        result = app(env or environ(), self.start_response)
        try:
            return b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def requests_by(captured, *keys):
    found = {}
    for point in captured.find(DURATION):
        key = tuple(point.tags.get(k) for k in keys)
        found[key] = found.get(key, 0) + point.histogram.count
    return found

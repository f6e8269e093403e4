"""A plain WSGI application for the WSGI tests, with one path per behaviour under test.

Servers load it as ``tests.integrations.wsgi_apps:application``; run as a script
(``python -m tests.integrations.wsgi_apps PORT``) it serves itself with
``wsgiref.simple_server`` until SIGINT.
"""

from __future__ import annotations

import sys
import time

import instrument

# Recorded once, where the module is imported: in uwsgi's master, before it forks the
# workers, which must not export the master's unexported records a second time.
instrument.count("tests.wsgi_apps.imported")

STREAM_PAUSE = 0.2  # seconds between the two chunks of /stream


def _stream():
    yield b"first chunk\n"
    time.sleep(STREAM_PAUSE)
    yield b"last chunk\n"


def _hang():
    yield b"first chunk\n"
    time.sleep(60)
    yield b"never sent in time\n"


def _late_boom():
    yield b"first chunk\n"
    raise ValueError("failed after the first chunk")


CLOSE_PAUSE = 0.3  # seconds /slow-close takes to close, after its client has the whole response


class _SlowClose:
    """A body whose close() takes time, as a framework's teardown can."""

    def __iter__(self):
        return iter([b"ok"])

    def close(self):
        time.sleep(CLOSE_PAUSE)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/slow-close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return _SlowClose()
    if path == "/boom":
        raise RuntimeError("failed before start_response")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/hang":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _hang()
    if path == "/late-boom":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _late_boom()
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"), 4096)
    if path == "/unavailable":
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"busy"]
    if path == "/slow":
        time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])  # no Content-Length: the server derives it
    return [b"ok"]


def main(port: int) -> None:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):
            pass

    server = make_server("127.0.0.1", port, application, handler_class=QuietHandler)
    print(f"serving with {type(server.get_app()).__name__}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(int(sys.argv[1]))

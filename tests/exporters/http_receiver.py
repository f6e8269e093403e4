"""A scripted HTTP endpoint on 127.0.0.1 for the http exporter's tests."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    """One request the test server received."""

    at: float  # time.monotonic() when it arrived
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def document(self):
        return json.loads(gzip.decompress(self.body))


class Endpoint:
    """A test HTTP server on 127.0.0.1 answering scripted responses in order, then 200.

    ``answer(status, body, headers)`` queues a response; ``hang()`` queues one that
    never comes (until ``release()``, when the connection is closed unanswered).
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._script: deque[tuple[int, bytes, dict[str, str]] | None] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http-endpoint", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/ingest"

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Endpoint:
        self._script.append((status, body, headers or {}))
        return self

    def hang(self) -> Endpoint:
        self._script.append(None)
        return self

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> Endpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with endpoint._lock:
                    endpoint.requests.append(Request(
                        time.monotonic(), "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                    ))
                    step = endpoint._script.popleft() if endpoint._script else (200, b"", {})
                if step is None:
                    endpoint._released.wait(30.0)
                    self.close_connection = True
                    return
                status, answer, headers = step
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: tests read `endpoint.requests`."""

        return Handler

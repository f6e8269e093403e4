"""What the endpoint's two listeners (HTTP and forwarding) share: tracked connections,
serving on a daemon thread, and closing a forked child's copies of their sockets.

A forked child inherits the descriptors of the parent's listening sockets and open
connections, but not the threads serving them. It must close its copies and do
nothing else: never ``shutdown()`` a socket, which would cut the parent's too, and
never a server's ``shutdown()``, which waits for a serving thread the child does not
have. Hence servers that remember their open connections without a lock the child
might inherit held (`TrackingServer.open_connections`), and `drop_inherited`.
"""

from __future__ import annotations

import os
import socket
import socketserver
import sys
import threading
from typing import Any

from ... import _log
from ..._suppress import suppress_thread

__all__ = ["TrackingServer", "drop_inherited", "serve"]

POLL = 0.25  # seconds between checks for shutdown in the servers' loops


class TrackingServer(socketserver.BaseServer):
    """Remembers its open connections: closed at shutdown, and dropped in a forked child.

    Call `track` in ``__init__`` before the server base class's ``__init__``.
    """

    daemon_threads = True
    block_on_close = False

    def track(self) -> None:
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def open_connections(self) -> list[socket.socket]:
        return list(self._open)  # no lock: also used in a child, where it may be held forever

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the scraper or worker went away
        _log.error_once(
            ("prometheus-server", type(self).__name__),
            "instrument: the Prometheus endpoint failed to serve a request", exc_info=True,
        )


def serve(server: socketserver.BaseServer) -> None:
    """A serving thread's body; the endpoint's own traffic is not the application's."""
    suppress_thread()
    server.serve_forever(poll_interval=POLL)


def drop_inherited(sock: socket.socket | None) -> None:
    """Close this process's copy of an inherited socket, leaving the others' intact.

    ``detach()`` first: the socket object forgets the descriptor, so nothing closes the
    number again later (by then it may be another file's), whatever still holds it.
    """
    if sock is None:
        return
    try:
        fd = sock.detach()
    except OSError:
        return
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass

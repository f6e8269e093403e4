"""Worker forwarding: a worker's points to the endpoint's process, over an abstract Unix socket.

Pre-fork servers (gunicorn, uwsgi, multiprocessing) have one endpoint, in the process
that created the exporter; every other process of the tree hands its delta points to
it here, so one port serves the sum over all workers, past and present, and nothing is
written to disk. The endpoint's process listens (`ForwardServer`) on a Unix stream
socket in Linux's abstract namespace (``"\\0instrument-prometheus-<pid>-<random>"``:
no file on disk, nothing to clean up, gone when the process is); a worker connects to
it (`Forwarder`) and sends frames (`_frames`).

The endpoint folds a frame only when it has all of it, then acknowledges it. The
worker resends a frame once on a fresh connection when sending it failed (the endpoint
cannot have folded a partial frame); when the acknowledgement does not come, it does
not resend, so nothing is ever counted twice. Every socket operation has a timeout:
if the endpoint's process is gone, ``export()`` raises `ForwardingError` (counted in
``instrument.export.failures``) instead of hanging. The endpoint accepts only peers of
its own user (or root), or its descendants (workers that switched user; `_ancestry`).
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from typing import Any, NamedTuple

from ... import _log
from ..._model import Point
from ..._suppress import suppress_thread
from .. import ExportError
from .._cumulative import Cumulative
from ._ancestry import peer, peer_trusted
from ._frames import ACK, FrameVersionError, decode_payload, encode_frame, read_payload, recv_exactly
from ._pull import Pulls
from ._servers import TrackingServer, drop_inherited

__all__ = ["FORWARD_TIMEOUT", "ForwardServer", "Forwarder", "ForwardingError", "Target"]

FORWARD_TIMEOUT = 5.0  # seconds for each connect, send and acknowledgement


class ForwardingError(ExportError, ConnectionError):
    """A forked worker could not hand its metrics to the process serving the endpoint."""


class Target(NamedTuple):
    """Where a worker forwards: the endpoint's abstract socket and its process, and the
    endpoint's scrape counter when this process shares it (forked: see `_pull`)."""

    name: str  # the abstract socket's name, starting with NUL
    pid: int
    pulls: Pulls | None = None


# --- the worker's side ----------------------------------------------------------------


class Forwarder:
    """Sends a worker's points to the endpoint's process, one acknowledged frame per export.

    *url* is the scrape URL of the endpoint, for error messages. One connection is kept
    open between exports. Thread-safe.
    """

    def __init__(self, target: Target, url: str) -> None:
        self.target = target
        self.url = url
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None

    def send(self, points: list[Point]) -> None:
        """Forward *points*; ForwardingError when the endpoint did not acknowledge them."""
        frame = encode_frame(points)
        with self._lock:
            for attempt in (1, 2):
                conn = self._conn if self._conn is not None else self._connect()
                try:
                    conn.sendall(frame)
                except OSError as exc:
                    self._disconnect()
                    if attempt == 2:
                        raise self._error("could not send metrics to", exc) from exc
                    continue  # the endpoint folds whole frames only: sending again is safe
                try:
                    ack = recv_exactly(conn, 1)
                except (OSError, EOFError) as exc:
                    self._disconnect()
                    raise self._error("got no acknowledgement (a batch may be lost) from", exc) from exc
                if ack != ACK:
                    self._disconnect()
                    raise self._error("got no acknowledgement (a batch may be lost) from", None)
                return

    @property
    def connected(self) -> bool:
        """Whether a connection to the endpoint is open (the endpoint then waits for this
        worker's answer at each scrape, `_pull`)."""
        return self._conn is not None

    def close(self) -> None:
        """Disconnect (after an export in progress); a later `send` connects again."""
        with self._lock:
            self._disconnect()

    def after_fork_in_child(self) -> None:
        """In a forked child: drop the parent's connection (a frame from here would
        interleave with the parent's), and its lock (a thread the child does not have
        may hold it)."""
        self._lock = threading.Lock()
        drop_inherited(self._conn)
        self._conn = None

    def _connect(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(FORWARD_TIMEOUT)
        try:
            conn.connect(self.target.name)
        except OSError as exc:
            conn.close()
            raise self._error("cannot connect to", exc) from exc
        self._conn = conn
        return conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, what: str, exc: BaseException | None) -> ForwardingError:
        cause = f": {exc}" if exc is not None else ""
        return ForwardingError(
            f"instrument: this worker {what} the process serving the Prometheus endpoint {self.url} "
            f"(pid {self.target.pid}){cause}; is that process still running?"
        )


# --- the endpoint's side ------------------------------------------------------------


class _ForwardHandler(socketserver.BaseRequestHandler):
    """One worker's connection: fold each whole frame into the endpoint's totals, acknowledge it."""

    server: ForwardServer

    def handle(self) -> None:
        suppress_thread()
        conn: socket.socket = self.request
        who = peer(conn)
        if not peer_trusted(who):
            _log.warn_once(
                "prometheus-untrusted-peer",
                "instrument: the Prometheus endpoint refused metrics from a process of another user",
            )
            return
        cumulative, pulls = self.server.cumulative, self.server.pulls
        try:
            while (payload := read_payload(conn)) is not None:
                cumulative.add_points(decode_payload(payload), source=who[0] if who else None)
                pulls.delivered(conn)
                conn.sendall(ACK)
        except (EOFError, ConnectionError):
            return  # the worker exited mid-frame: what it had not fully sent is not counted
        except FrameVersionError as exc:
            _log.error_once(
                ("prometheus-frame-version", repr(exc.version)),
                "instrument: the Prometheus endpoint refused metrics from worker pid %s: %s. The worker "
                "runs another version of instrument than this process (pid %d); restart both from one "
                "install. The worker counts each refused batch in instrument.export.failures",
                who[0] if who else "?", exc, os.getpid(),
            )
        except ValueError:
            _log.error_once(
                "prometheus-frame",
                "instrument: the Prometheus endpoint received a malformed frame from a worker; "
                "closing that connection", exc_info=True,
            )


class ForwardServer(TrackingServer, socketserver.ThreadingUnixStreamServer):
    """Listens on abstract socket *address* and folds workers' frames into *cumulative*."""

    request_queue_size = 128

    def shutdown_request(self, request: Any) -> None:
        self.pulls.forget(request)  # a scrape no longer waits for this worker
        super().shutdown_request(request)

    def __init__(self, address: str, cumulative: Cumulative, pulls: Pulls) -> None:
        self.cumulative = cumulative
        self.pulls = pulls
        self.track()
        super().__init__(address, _ForwardHandler)

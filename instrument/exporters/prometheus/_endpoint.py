"""The endpoint: what the process owning a Prometheus address runs, from start to stop.

An `Endpoint` is the cumulative state (`Cumulative`: delta batches folded into totals
since start), a small threaded `http.server` serving it at ``/metrics`` and the
`_forwarding` listener that folds the workers' points into the same state, each server
on a daemon thread. It is created at once with everything, when instrument starts (the
exporter is eager), so that a pre-fork master has it before it forks workers.

The abstract namespace the forwarding listener needs is Linux's: elsewhere the endpoint
serves its own process only, with a warning.
"""

from __future__ import annotations

import gzip
import os
import secrets
import socket
import socketserver
import threading
from collections.abc import Callable, Hashable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ... import _log, _threads
from ..._process import process_start_time
from ..._suppress import suppress_thread
from .._cumulative import Cumulative
from ._compat import prometheus_client_points, target_info, with_resource_labels
from ._forwarding import ForwardServer
from ._negotiation import OPENMETRICS, PROTOBUF, accepts_gzip, choose_format
from ._protobuf import PROTOBUF_CONTENT_TYPE, render_protobuf
from ._pull import LOCAL, PULL_WAIT, Pulls
from ._servers import TrackingServer, drop_inherited, serve
from ._text import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, render

__all__ = ["Endpoint", "MetricsServer", "format_address"]


def _nothing(timeout: float) -> None:
    pass


def _wait_for(headers: Any) -> float:
    """A quarter of the scrape's timeout (Prometheus' ``X-Prometheus-Scrape-Timeout-Seconds``)."""
    try:
        return max(0.0, float(headers.get("X-Prometheus-Scrape-Timeout-Seconds", "")) / 4)
    except ValueError:
        return PULL_WAIT


def format_address(address: tuple[str, int]) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _MetricsHandler(BaseHTTPRequestHandler):
    """``GET /metrics``: the format the ``Accept`` header prefers (text, OpenMetrics or
    protobuf with native histograms), gzipped if accepted."""

    server: MetricsServer
    timeout = 10  # seconds a client may take to send its request
    server_version = "instrument"

    def handle(self) -> None:
        suppress_thread()  # the endpoint's own traffic is not the application's
        super().handle()

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        if self.path.partition("?")[0] != "/metrics":
            self.send_error(404, "Not Found", "instrument serves Prometheus metrics at /metrics")
            return
        chosen = choose_format(self.headers.get("Accept", ""))
        server = self.server
        server.collect(_wait_for(self.headers))
        points = with_resource_labels(server.cumulative.points(), server.resource, server.resource_labels)
        points += prometheus_client_points(points, server.start_time)
        points += target_info(server.resource, server.start_time)
        if chosen == PROTOBUF:
            body = render_protobuf(points, server.native_max_buckets, server.classic_buckets)
            content_type = PROTOBUF_CONTENT_TYPE
        elif chosen == OPENMETRICS:
            body, content_type = render(points, True, server.classic_buckets).encode(), OPENMETRICS_CONTENT_TYPE
        else:
            body, content_type = render(points, False, server.classic_buckets).encode(), TEXT_CONTENT_TYPE
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if accepts_gzip(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=6)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class MetricsServer(TrackingServer, ThreadingHTTPServer):
    """Serves *cumulative* at ``http://ADDRESS/metrics`` (IPv4 or IPv6, as the host resolves)."""

    def __init__(self, address: tuple[str, int], cumulative: Cumulative) -> None:
        self.cumulative = cumulative
        # Set by the exporters sharing the endpoint: `_native.native`'s limit, `classic_buckets`.
        self.native_max_buckets = 0
        self.collect: Callable[[float], None] = _nothing  # the endpoint's `Endpoint.collect`
        self.start_time = process_start_time()  # prometheus_client's process_start_time_seconds
        self.classic_buckets: Mapping[str, tuple[float, ...]] = {}
        self.resource: Mapping[str, str] = {}  # target_info's labels
        self.resource_labels: tuple[str, ...] = ()  # attributes also on every series
        self.track()
        try:
            self.address_family = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)[0][0]
        except (OSError, IndexError):
            pass  # binding fails below with the resolver's error
        super().__init__(address, _MetricsHandler)

    def server_bind(self) -> None:
        # Not HTTPServer.server_bind: its getfqdn() may wait on a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class Endpoint:
    """What the owning process has: HTTP server, forwarding listener, cumulative state.

    Shared by the exporters of one process created for the same address (see
    `_registry`), so that `configure()` creating a new exporter before the old one
    stops does not clash. OSError when it cannot listen on *address*.
    """

    def __init__(self, address: tuple[str, int]) -> None:
        self.pid = os.getpid()
        self.cumulative = Cumulative()
        self.users = 0  # exporters sharing it; counted by `_registry`
        self.http = MetricsServer(address, self.cumulative)
        self.address = (address[0], int(self.http.server_address[1]))
        self.forward_address: str | None = f"\0instrument-prometheus-{self.pid}-{secrets.token_hex(8)}"
        self.forward: ForwardServer | None = None
        self.pulls = Pulls()  # before any fork: forked workers share its counter
        self.http.collect = self.collect
        try:
            self.forward = ForwardServer(self.forward_address, self.cumulative, self.pulls)
        except OSError as exc:
            self.forward_address = None
            _log.warn_once(
                ("prometheus-forward", self.address),
                "instrument: the Prometheus endpoint %s cannot receive forked workers' metrics (%s); "
                "it serves this process's only",
                format_address(self.address), exc,
            )
        self._serving: list[tuple[TrackingServer, threading.Thread]] = []
        try:
            for name, server in (("http", self.http), ("forward", self.forward)):
                if server is not None:
                    thread = threading.Thread(
                        target=serve, args=(server,), name=f"instrument-prometheus-{name}", daemon=True
                    )
                    _threads.start(thread)
                    self._serving.append((server, thread))
        except RuntimeError as exc:  # "can't create new thread at interpreter shutdown"
            self.stop()
            raise OSError(f"cannot start the endpoint's threads: {exc}") from exc

    def collect(self, timeout: float = PULL_WAIT) -> None:
        """Before a scrape: ask every process for its records and wait for them (`_pull`):
        this process and the connected workers, when this process's collector is looking
        (its workers run with its configuration: with ``live_interval`` 0 nobody answers)."""
        since = self.pulls.request()
        if since - self.pulls.local_polled > 2 * PULL_WAIT:
            return
        sources: list[Hashable] = list(self.forward.open_connections()) if self.forward is not None else []
        self.pulls.wait(since, [LOCAL, *sources], since + min(PULL_WAIT, timeout))

    def stop(self) -> None:
        """Stop serving (in the owning process only)."""
        stoppers = []
        for running, thread in self._serving:
            if thread.is_alive():  # shutdown() waits for serve_forever() to return: both at once
                stopper = threading.Thread(target=running.shutdown, name="instrument-prometheus-stop", daemon=True)
                try:
                    _threads.start(stopper)
                    stoppers.append(stopper)
                except RuntimeError:  # no new threads at interpreter exit (3.12+)
                    running.shutdown()
        for stopper in stoppers:
            stopper.join()
        for server in (self.http, self.forward):
            if server is None:
                continue
            server.server_close()
            for conn in server.open_connections():
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # wakes the handler thread reading it
                except OSError:
                    pass

    def drop_in_child(self) -> None:
        """In a forked child: close the inherited descriptors, touch nothing else (`_servers`)."""
        for server in (self.http, self.forward):
            if server is not None:
                for conn in server.open_connections():
                    drop_inherited(conn)
                drop_inherited(server.socket)

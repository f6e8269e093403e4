"""`prometheus`: a scrape endpoint with the totals of this process and of its forked workers.

Serves ``http://HOST:PORT/metrics`` (``prometheus_address``, default 127.0.0.1:9464)
from a small threaded `http.server` on a daemon thread: the Prometheus text format
0.0.4, or OpenMetrics 1.0 when the scraper's ``Accept`` header asks for
``application/openmetrics-text``. Batches are deltas; the endpoint folds them into
cumulative series (`Cumulative`): counters and histograms only grow, gauges keep the
last value set (by whichever worker set it last). A scrape shows what was exported so
far, so it lags by up to one ``interval``.

Names follow OpenTelemetry's Prometheus compatibility rules: characters other than
``[a-zA-Z0-9_:]`` become ``_`` and runs of ``_`` collapse; the unit becomes a word
suffix (``s`` -> ``_seconds``, ``By`` -> ``_bytes``, ``{request}`` -> nothing, ``1``
-> ``_ratio`` for gauges) unless the name already ends with it; counters end in
``_total``. Label names are sanitised the same way (without ``:``); tags whose names
collide are joined with ``;`` in the order of their original keys, and series whose
tags give the same labels are served as one; a histogram tag called ``le`` becomes
``exported_le``. Of two metrics whose Prometheus names clash, the first by original
name is served and the other is left out, with a warning.

Histogram buckets: every histogram series has the same fixed ``le`` boundaries,
powers of two chosen by unit (`BOUNDARY_EXPONENTS`: 2**-17 s to 2**6 s for
seconds, 64 B to 512 MiB for bytes, ...) plus ``+Inf``. A power of two is a bucket
boundary of the exponential histograms at every scale >= 0, so each cumulative
count is exact with respect to the recorded buckets; values below the first
boundary (zero and negative values too) count in every bucket, values above the
last only in ``+Inf``. ``_count`` and ``_sum`` are exact. OpenMetrics forbids a
``_sum`` once negative values were recorded, so it is left out there.

Pre-fork servers (gunicorn, uwsgi, multiprocessing). The process that creates the
exporter owns the endpoint: the HTTP server, the cumulative state and a listening
Unix stream socket in Linux's abstract namespace
(``"\\0instrument-prometheus-<pid>-<random>"``: no file on disk, nothing to clean up,
gone when the process is). Everything is set up at construction, which for
``INSTRUMENT_EXPORTERS=prometheus`` is at ``import instrument`` (the exporter is in
`EAGER`), so a pre-fork master has it before it forks workers.

In a forked child, `after_fork_in_child()` (called by the pipeline's fork hook, and
by this module's own fork hook for every endpoint of the parent) closes the child's
copies of the listening sockets and of the parent's open connections (close only:
never `shutdown()`, which would cut the parent's sockets too, and never the server
threads' shutdown, which would wait for threads the child does not have). The same
object then forwards: ``export()`` sends the child's delta points to the parent over
a connection to the abstract socket, and the parent folds them into the same
state (an additive gauge, such as ``http.server.active_requests``, per worker pid:
the endpoint serves the sum over the live ones; see `Cumulative`). So one endpoint
serves the sum over all workers, past and present; nothing is written to disk and
there is one port. A grandchild forwards to the same
process, since the address is inherited. An exporter created anew in a child for
an address an ancestor serves (an application calling ``configure()`` in each
worker) forwards as well.

Processes started with exec inherit no Python objects, so the endpoint's process
also names its endpoints in the environment variable ``ENDPOINTS_VARIABLE``
(pid, abstract socket, port and host of each). An exporter created in a process
that descends from that pid, for the same host and port, forwards there:
multiprocessing's spawn and forkserver workers, Python subprocesses. A process
that is not a descendant ignores the variable, however it got it. (A server that
re-executes itself as a child, gunicorn's USR2, forwards to the old master until
that exits, then has no endpoint: nothing takes the port over.)

Wire format, child to parent: frames of a 4-byte big-endian length and a UTF-8 JSON
object ``{"v": 1, "points": [...]}``; each point has ``name``, ``kind``, ``unit``,
``tags``, ``start_time``, ``end_time`` and either ``value`` (with ``additive``
true for a gauge that is the worker's share of a total) or ``histogram``
(``count``, ``sum``, ``min``, ``max``, ``scale``, ``zero_count`` and the raw sparse
buckets ``positive`` / ``negative`` as ``[[index, count], ...]``). The parent folds a
frame only when it has all of it, then answers one byte (0x06). The child resends
a frame once on a fresh connection when sending it failed (the parent cannot have
folded a partial frame); when the acknowledgement does not come, it does not
resend, so nothing is ever counted twice. Every socket operation has a timeout:
if the parent is gone, ``export()`` raises `ForwardingError` (counted in
``instrument.export.failures``) instead of hanging. The parent accepts only peers
of its own user (or root), or its descendants (workers that switched user). The
abstract namespace is Linux's: elsewhere the endpoint serves its own process only,
with a warning.

A process that cannot listen (the port is taken by another process, EADDRINUSE)
logs one warning naming the address and carries on: this exporter then does
nothing; the application and its other exporters are unaffected.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import secrets
import socket
import socketserver
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .. import _log
from .._buckets import BOUNDARY_EXPONENTS
from .._histogram import HistogramData
from .._model import Batch, Point
from .._suppress import suppress_thread
from . import Exporter
from ._cumulative import Cumulative
from ._prometheus_text import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    accepts_gzip,
    render,
    wants_openmetrics,
)

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["BOUNDARY_EXPONENTS", "ForwardingError", "PrometheusExporter"]

DEFAULT_ADDRESS = ("127.0.0.1", 9464)

FORWARD_TIMEOUT = 5.0  # seconds for each connect, send and acknowledgement
MAX_FRAME = 1 << 30  # bytes; a longer frame is taken for garbage
_HEADER = struct.Struct("!I")
_ACK = b"\x06"
_POLL = 0.25  # seconds between checks for shutdown in the servers' loops

_INERT, _ENDPOINT, _FORWARDER = "inert", "endpoint", "forwarder"

# Set by an endpoint's process for the processes it starts (not a configuration option):
# "PID,SOCKET,PORT,HOST" per endpoint, ";" between them.
ENDPOINTS_VARIABLE = "_INSTRUMENT_PROMETHEUS_ENDPOINTS"


class ForwardingError(ConnectionError):
    """A forked worker could not hand its metrics to the process serving the endpoint."""


# --- wire format between a forked child and the endpoint's process -----------------


def _encode_points(points: list[Point]) -> bytes:
    """One frame: length prefix and JSON (see the module docstring)."""
    items = []
    for point in points:
        item: dict[str, Any] = {
            "name": point.name, "kind": point.kind, "unit": point.unit, "tags": point.tags,
            "start_time": point.start_time, "end_time": point.end_time,
        }
        histogram = point.histogram
        if histogram is None:
            item["value"] = point.value
            if point.additive:
                item["additive"] = True
        else:
            item["histogram"] = {
                "count": histogram.count, "sum": histogram.sum, "min": histogram.min, "max": histogram.max,
                "scale": histogram.scale, "zero_count": histogram.zero_count,
                "positive": sorted(histogram.positive.items()), "negative": sorted(histogram.negative.items()),
            }
        items.append(item)
    payload = json.dumps({"v": 1, "points": items}, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload)) + payload


def _decode_points(payload: bytes) -> list[Point]:
    """The points of one frame's payload; ValueError if it is not one."""
    try:
        data = json.loads(payload)
        if data.get("v") != 1:
            raise ValueError(f"unknown frame version {data.get('v')!r}")
        points = []
        for item in data["points"]:
            kind = item["kind"]
            tags = item["tags"]
            if kind not in ("counter", "gauge", "histogram") or not isinstance(tags, dict):
                raise ValueError(f"not a point: {item!r:.200}")
            histogram = None
            raw = item.get("histogram")
            if raw is not None:
                histogram = HistogramData(
                    count=int(raw["count"]), sum=raw["sum"], min=raw["min"], max=raw["max"],
                    scale=int(raw["scale"]), zero_count=int(raw["zero_count"]),
                    positive={int(i): int(n) for i, n in raw["positive"]},
                    negative={int(i): int(n) for i, n in raw["negative"]},
                )
            points.append(Point(
                str(item["name"]), kind, str(item["unit"]), tags, float(item["start_time"]),
                float(item["end_time"]), value=item.get("value"), histogram=histogram,
                additive=item.get("additive") is True,
            ))
        return points
    except (AttributeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed frame: {exc!r}") from exc


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """*size* bytes; None at end of stream before the first; EOFError if it ends within."""
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            if remaining == size:
                return None
            raise EOFError(f"connection closed {size - remaining} bytes into {size}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _drop_inherited(sock: socket.socket | None) -> None:
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


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                pid = int(stat.read().rpartition(b")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def _peer(conn: socket.socket) -> tuple[int, int] | None:
    """``(pid, uid)`` of the process at the other end of a Unix socket, if the system says."""
    try:
        size = struct.calcsize("3i")
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))
    except (AttributeError, OSError, struct.error):
        return None
    return pid, uid


def _peer_trusted(peer: tuple[int, int] | None) -> bool:
    """Peers of this user or root, or descendants of this process (workers may change user)."""
    if peer is None:
        return False
    pid, uid = peer
    return uid in (os.geteuid(), 0) or _descends_from(pid, os.getpid())


# --- the servers ------------------------------------------------------------------------


class _TrackingServer(socketserver.BaseServer):
    """Remembers its open connections: closed at shutdown, and dropped in a forked child."""

    daemon_threads = True
    block_on_close = False
    endpoint: _Endpoint

    def _track(self) -> None:
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


class _MetricsHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
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
        openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
        body = self.server.endpoint.render(openmetrics).encode()
        self.send_response(200)
        self.send_header("Content-Type", OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE)
        if accepts_gzip(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=6)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _HTTPServer(_TrackingServer, ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], endpoint: _Endpoint) -> None:
        self.endpoint = endpoint
        self._track()
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


class _ForwardHandler(socketserver.BaseRequestHandler):
    server: _ForwardServer

    def handle(self) -> None:
        suppress_thread()
        conn: socket.socket = self.request
        peer = _peer(conn)
        if not _peer_trusted(peer):
            _log.warn_once(
                "prometheus-untrusted-peer",
                "instrument: the Prometheus endpoint refused metrics from a process of another user",
            )
            return
        cumulative = self.server.endpoint.cumulative
        try:
            while (header := _recv_exactly(conn, _HEADER.size)) is not None:
                (length,) = _HEADER.unpack(header)
                if length > MAX_FRAME:
                    raise ValueError(f"a frame of {length} bytes is longer than {MAX_FRAME}")
                payload = _recv_exactly(conn, length)
                if payload is None:
                    return
                cumulative.add_points(_decode_points(payload), source=peer[0] if peer else None)
                conn.sendall(_ACK)
        except (EOFError, ConnectionError):
            return  # the worker exited mid-frame: what it had not fully sent is not counted
        except ValueError:
            _log.error_once(
                "prometheus-frame",
                "instrument: the Prometheus endpoint received a malformed frame from a worker; "
                "closing that connection", exc_info=True,
            )


class _ForwardServer(_TrackingServer, socketserver.ThreadingUnixStreamServer):
    request_queue_size = 128

    def __init__(self, address: str, endpoint: _Endpoint) -> None:
        self.endpoint = endpoint
        self._track()
        super().__init__(address, _ForwardHandler)


def _format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Endpoint:
    """What the owning process has: HTTP server, forwarding listener, cumulative state.

    Shared by the exporters of one process created for the same address, so that
    `configure()` creating a new exporter before the old one stops does not clash.
    """

    def __init__(self, address: tuple[str, int]) -> None:
        self.pid = os.getpid()
        self.cumulative = Cumulative()
        self.users = 0
        self.http = _HTTPServer(address, self)
        self.address = (address[0], int(self.http.server_address[1]))
        self.forward_address: str | None = f"\0instrument-prometheus-{self.pid}-{secrets.token_hex(8)}"
        self.forward: _ForwardServer | None = None
        try:
            self.forward = _ForwardServer(self.forward_address, self)
        except OSError as exc:
            self.forward_address = None
            _log.warn_once(
                ("prometheus-forward", self.address),
                "instrument: the Prometheus endpoint %s cannot receive forked workers' metrics (%s); "
                "it serves this process's only",
                _format_address(self.address), exc,
            )
        self._serving: list[tuple[_TrackingServer, threading.Thread]] = []
        try:
            for name, server in (("http", self.http), ("forward", self.forward)):
                if server is not None:
                    thread = threading.Thread(
                        target=_serve, args=(server,), name=f"instrument-prometheus-{name}", daemon=True
                    )
                    thread.start()
                    self._serving.append((server, thread))
        except RuntimeError as exc:  # "can't create new thread at interpreter shutdown"
            self.stop()
            raise OSError(f"cannot start the endpoint's threads: {exc}") from exc

    def render(self, openmetrics: bool) -> str:
        return render(self.cumulative.points(), openmetrics)

    def stop(self) -> None:
        """Stop serving (in the owning process only)."""
        stoppers = []
        for running, thread in self._serving:
            if thread.is_alive():  # shutdown() waits for serve_forever() to return: both at once
                stopper = threading.Thread(target=running.shutdown, name="instrument-prometheus-stop", daemon=True)
                try:
                    stopper.start()
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
        """In a forked child: close the inherited descriptors, touch nothing else."""
        for server in (self.http, self.forward):
            if server is not None:
                for conn in server.open_connections():
                    _drop_inherited(conn)
                _drop_inherited(server.socket)


def _serve(server: socketserver.BaseServer) -> None:
    suppress_thread()
    server.serve_forever(poll_interval=_POLL)


# Endpoints of this process by configured address, and the forwarding targets this
# process inherited (address -> (abstract socket, pid of the endpoint's process)).
_endpoints: dict[tuple[str, int], _Endpoint] = {}
_targets: dict[tuple[str, int], tuple[str, int]] = {}
_registry_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()  # may have been held by a thread the child does not have
    for address, endpoint in list(_endpoints.items()):
        endpoint.drop_in_child()
        if endpoint.forward_address is not None:
            _targets[address] = (endpoint.forward_address, endpoint.pid)
            _targets[endpoint.address] = (endpoint.forward_address, endpoint.pid)
    _endpoints.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _publish() -> None:
    """Name this process's endpoints in the environment its new processes inherit.

    Entries of ancestors stay (a grandchild started by a worker forwards to the
    endpoint's process too); this process's entries are those of its running
    endpoints. Called with `_registry_lock` held, when an endpoint starts only: the
    environment is not changed at shutdown, which may run on a background thread
    while another thread reads the environment in C (getaddrinfo) without the GIL.
    An entry left by a stopped endpoint is skipped by `_inherited_target`.
    """
    mine = os.getpid()
    kept = [entry for entry in _read_endpoints_variable() if entry[0] != mine]
    for endpoint in dict.fromkeys(_endpoints.values()):
        if endpoint.forward_address is not None:
            kept.append((mine, endpoint.forward_address, endpoint.address[1], endpoint.address[0]))
    text = ";".join(f"{pid},{name.lstrip(chr(0))},{port},{host}" for pid, name, port, host in kept)
    if text:
        os.environ[ENDPOINTS_VARIABLE] = text
    else:
        os.environ.pop(ENDPOINTS_VARIABLE, None)


def _read_endpoints_variable() -> list[tuple[int, str, int, str]]:
    entries = []
    for entry in os.environ.get(ENDPOINTS_VARIABLE, "").split(";"):
        parts = entry.split(",", 3)
        if len(parts) == 4 and parts[0].isdigit() and parts[2].isdigit():
            entries.append((int(parts[0]), "\0" + parts[1], int(parts[2]), parts[3]))
    return entries


def _inherited_target(address: tuple[str, int]) -> tuple[str, int] | None:
    """The endpoint an ancestor serves at *address*, found through the environment.

    This is how processes started with exec (multiprocessing's spawn and forkserver
    workers, a subprocess running Python, a re-executed server) find it. Only a
    descendant of the endpoint's process uses an entry: a process that merely copied
    the environment is independent, and binds (or warns) as any other.
    """
    mine = os.getpid()
    for pid, name, port, host in _read_endpoints_variable():
        if (host, port) == address and pid != mine and _descends_from(mine, pid) and _accepting(name):
            return (name, pid)
    return None


def _accepting(name: str) -> bool:
    """Whether an endpoint still listens on abstract socket *name* (it may have stopped)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(FORWARD_TIMEOUT)
    try:
        probe.connect(name)
    except OSError:
        return False
    finally:
        probe.close()
    return True


# --- the exporter ---------------------------------------------------------------------


class PrometheusExporter(Exporter):
    """Serves cumulative metrics at ``http://HOST:PORT/metrics`` for Prometheus to scrape.

    *address* defaults to ``config.prometheus_address``; port 0 picks a free port
    (see `address` and `url`). In a forked child the same object forwards to the
    endpoint of the process that created it (see the module docstring).
    """

    name = "prometheus"

    def __init__(self, config: Config | None = None, address: tuple[str, int] | None = None) -> None:
        super().__init__(config)
        if address is None:
            address = config.prometheus_address if config is not None else DEFAULT_ADDRESS
        self.address: tuple[str, int] = (str(address[0]), int(address[1]))
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._endpoint: _Endpoint | None = None
        self._target: tuple[str, int] | None = None  # (abstract socket, endpoint's pid) when forwarding
        self._conn: socket.socket | None = None
        self._role = _INERT
        self._start()

    @property
    def url(self) -> str:
        """The scrape URL this process's endpoint serves (or the one it forwards to)."""
        return f"http://{_format_address(self.address)}/metrics"

    @property
    def role(self) -> str:
        """``"endpoint"``, ``"forwarder"`` (a forked worker) or ``"inert"`` (could not listen)."""
        self._check_process()
        return self._role

    def _start(self) -> None:
        with _registry_lock:
            target = _targets.get(self.address) or _inherited_target(self.address)
            if target is not None:  # an ancestor serves this address: hand it our points
                self._target, self._role = target, _FORWARDER
                return
            endpoint = _endpoints.get(self.address) if self.address[1] else None
            if endpoint is None:
                try:
                    endpoint = _Endpoint(self.address)
                except OSError as exc:
                    self._warn_cannot_listen(exc)
                    return
                _endpoints[endpoint.address] = endpoint
                if self.address[1]:
                    _endpoints[self.address] = endpoint
                _publish()
            endpoint.users += 1
        self._endpoint = endpoint
        self.address = endpoint.address
        self._role = _ENDPOINT

    def _warn_cannot_listen(self, exc: OSError) -> None:
        where = _format_address(self.address)
        if exc.errno == errno.EADDRINUSE:
            reason = "it is already in use, probably by another process"
        else:
            reason = f"{exc.strerror or exc}"
        _log.warn_once(
            ("prometheus-listen", self.address),
            "instrument: the Prometheus exporter cannot listen on %s (%s); this process serves no "
            "Prometheus metrics, its other exporters carry on. Set INSTRUMENT_PROMETHEUS_ADDRESS to a "
            "free host:port, or in a pre-fork server create the exporter in the master before it forks "
            "(INSTRUMENT_EXPORTERS=prometheus and import instrument in the master)",
            where, reason,
        )

    def after_fork_in_child(self) -> None:
        """In a forked child: stop being the endpoint (or drop the parent's connection), forward."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()  # may have been held by a thread the child does not have
        endpoint = self._endpoint
        if endpoint is not None:
            endpoint.drop_in_child()
            self._endpoint = None
            if endpoint.forward_address is not None:
                self._target, self._role = (endpoint.forward_address, endpoint.pid), _FORWARDER
            else:
                self._role = _INERT
        _drop_inherited(self._conn)  # the parent's connection: a frame from here would interleave
        self._conn = None

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked without the pipeline's hook
            self.after_fork_in_child()

    def export(self, batch: Batch) -> None:
        self._check_process()
        if self._role == _ENDPOINT and self._endpoint is not None:
            self._endpoint.cumulative.add(batch)
        elif self._role == _FORWARDER and batch.points:
            self._forward(_encode_points(batch.points))

    def _forward(self, frame: bytes) -> None:
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
                    ack = _recv_exactly(conn, 1)
                except (OSError, EOFError) as exc:
                    self._disconnect()
                    raise self._error("got no acknowledgement (a batch may be lost) from", exc) from exc
                if ack != _ACK:
                    self._disconnect()
                    raise self._error("got no acknowledgement (a batch may be lost) from", None)
                return

    def _connect(self) -> socket.socket:
        assert self._target is not None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(FORWARD_TIMEOUT)
        try:
            conn.connect(self._target[0])
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
        pid = self._target[1] if self._target else "?"
        cause = f": {exc}" if exc is not None else ""
        return ForwardingError(
            f"instrument: this worker {what} the process serving the Prometheus endpoint {self.url} "
            f"(pid {pid}){cause}; is that process still running?"
        )

    def shutdown(self) -> None:
        """The last exporter of the endpoint's process stops its servers; a forwarder disconnects."""
        self._check_process()
        with self._lock:  # a second caller returns once the first has finished
            endpoint, self._endpoint = self._endpoint, None
            if endpoint is not None:
                with _registry_lock:
                    endpoint.users -= 1
                    last = endpoint.users <= 0
                    if last:
                        for address in [a for a, e in _endpoints.items() if e is endpoint]:
                            del _endpoints[address]
                if last:
                    endpoint.stop()
            self._disconnect()
            self._role = _INERT

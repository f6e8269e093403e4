"""`PrometheusExporter`: serves the endpoint of its address, or forwards to the process that does.

The exporter has one of three roles, settled when it is created and again in a forked
child: ``"endpoint"`` (this process serves the address: batches are folded into the
endpoint's cumulative state), ``"forwarder"`` (an ancestor serves it: batches are sent
there, `_forwarding`) or ``"inert"`` (it could not listen: it does nothing).

A process that cannot listen (the port is taken by another process, EADDRINUSE) logs
one warning naming the address and carries on: this exporter then does nothing; the
application and its other exporters are unaffected.
"""

from __future__ import annotations

import errno
import os
import threading
from time import monotonic
from typing import TYPE_CHECKING

from ... import _log
from ..._model import Batch
from ..._resource import attributes
from .. import Exporter
from ._endpoint import Endpoint, format_address
from ._forwarding import Forwarder, Target
from ._pull import FALLBACK_PERIOD, LOCAL
from ._registry import release, serve_or_forward

if TYPE_CHECKING:
    from ..._config import Config

__all__ = ["DEFAULT_ADDRESS", "PrometheusExporter"]

DEFAULT_ADDRESS = ("127.0.0.1", 9464)


class PrometheusExporter(Exporter):
    """Serves cumulative metrics at ``http://HOST:PORT/metrics`` for Prometheus to scrape.

    *address* defaults to ``config.prometheus_address``; port 0 picks a free port
    (see `address` and `url`). In a forked child the same object forwards to the
    endpoint of the process that created it (see `instrument.exporters.prometheus`).
    """

    name = "prometheus"
    live = True  # asked every live_interval whether it wants a batch: after a scrape (`_pull`)
    options = ("prometheus_address", "prometheus_native_max_buckets", "classic_buckets", "resource",
               "prometheus_resource_labels")

    def __init__(self, config: Config | None = None, address: tuple[str, int] | None = None) -> None:
        super().__init__(config)
        if address is None:
            address = config.prometheus_address if config is not None else DEFAULT_ADDRESS
        self.native_max_buckets = config.prometheus_native_max_buckets if config is not None else 0
        self.classic_buckets = config.classic_buckets if config is not None else {}
        self.resource = attributes(config.resource if config is not None else {})
        self.resource_labels: tuple[str, ...] = config.prometheus_resource_labels if config is not None else ()
        self.address: tuple[str, int] = (str(address[0]), int(address[1]))
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # At most one of the two: the endpoint this process serves, or where it forwards.
        self._endpoint: Endpoint | None = None
        self._forwarder: Forwarder | None = None
        self._seen = 0  # the scrape counter when this process last answered (`_pull`)
        self._answer = False  # the next export answers a scrape, even an empty one
        self._last_live = 0.0  # without the shared counter: when the last live batch was wanted
        self._start()

    @property
    def url(self) -> str:
        """The scrape URL this process's endpoint serves (or the one it forwards to)."""
        return f"http://{format_address(self.address)}/metrics"

    @property
    def role(self) -> str:
        """``"endpoint"``, ``"forwarder"`` (a forked worker) or ``"inert"`` (could not listen)."""
        self._check_process()
        if self._endpoint is not None:
            return "endpoint"
        return "forwarder" if self._forwarder is not None else "inert"

    def _start(self) -> None:
        try:
            found = serve_or_forward(self.address)
        except OSError as exc:
            self._warn_cannot_listen(exc)
            return
        if isinstance(found, Target):  # an ancestor serves this address: hand it our points
            self._forwarder = Forwarder(found, self.url)
            return
        self._endpoint = found
        self.address = found.address
        found.http.native_max_buckets = self.native_max_buckets  # the latest exporter's settings win
        found.http.classic_buckets = self.classic_buckets
        found.http.resource = self.resource
        found.http.resource_labels = self.resource_labels

    def _warn_cannot_listen(self, exc: OSError) -> None:
        where = format_address(self.address)
        if exc.errno == errno.EADDRINUSE:
            reason = "it is already in use, probably by another process"
        else:
            reason = f"{exc.strerror or exc}"
        _log.warn_once(
            ("prometheus-listen", self.address),
            "instrument: the Prometheus exporter cannot listen on %s (%s); this process serves no "
            "Prometheus metrics, its other exporters carry on. Set INSTRUMENT_PROMETHEUS_ADDRESS to a "
            "free host:port, or in a pre-fork server create the exporter in the master before it forks "
            "(call instrument.configure() in the master, or run the server under instrument run)",
            where, reason,
        )

    def after_fork_in_child(self) -> None:
        """In a forked child: stop being the endpoint (or drop the parent's connection), forward.

        Called by the pipeline's fork hook; the child closes only its copies of the
        endpoint's sockets (see `_servers`).
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()  # may have been held by a thread the child does not have
        self._answer = False  # the parent's scrapes so far are the parent's to answer
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.drop_in_child()
            if endpoint.forward_address is not None:
                target = Target(endpoint.forward_address, endpoint.pid, endpoint.pulls)
                self._forwarder = Forwarder(target, self.url)
        elif self._forwarder is not None:
            self._forwarder.after_fork_in_child()

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked without the pipeline's hook
            self.after_fork_in_child()

    def live_wanted(self) -> bool:
        """Asked by the collector every ``live_interval``: whether a scrape has asked since this
        process last answered (`_pull`); without the shared counter (a process started by
        exec), every `FALLBACK_PERIOD`."""
        self._check_process()
        endpoint, forwarder = self._endpoint, self._forwarder
        pulls = endpoint.pulls if endpoint is not None else forwarder.target.pulls if forwarder is not None else None
        now = monotonic()
        if pulls is None:
            if forwarder is None or now - self._last_live < FALLBACK_PERIOD:
                return False
            self._last_live = now
            return True
        if endpoint is not None:
            pulls.local_polled = now
        generation = pulls.generation()
        if generation == self._seen and (forwarder is None or forwarder.connected):
            return False  # a worker not connected yet says hello (an empty batch): scrapes then wait for it
        self._seen = generation
        self._answer = True
        return True

    def export(self, batch: Batch) -> None:
        self._check_process()
        endpoint, forwarder = self._endpoint, self._forwarder
        answer, self._answer = self._answer, False
        if endpoint is not None:
            endpoint.cumulative.add(batch)
            if answer:
                endpoint.pulls.delivered(LOCAL)
        elif forwarder is not None and (batch.points or answer):
            forwarder.send(batch.points)  # an empty frame answers a scrape too

    def shutdown(self) -> None:
        """The last exporter of the endpoint's process stops its servers; a forwarder disconnects."""
        self._check_process()
        with self._lock:  # a second caller returns once the first has finished
            endpoint, self._endpoint = self._endpoint, None
            forwarder, self._forwarder = self._forwarder, None
            if endpoint is not None:
                release(endpoint)
            if forwarder is not None:
                forwarder.close()

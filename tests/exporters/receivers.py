"""Real receivers for every exporter, seen the same way: which runs sent a metric, and its values.

A run is one short-lived process whose records carry the tag ``run=<id>``.
`Receiver.values(name)` gives, for each run id, the numbers received for the metric
*name* (a counter's or gauge's value, a histogram's count), however the exporter
spells them on its wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from instrument.exporters.prometheus import PrometheusExporter

from ..helpers import require_module
from .http_receiver import Endpoint
from .otlp_receiver import GrpcOtlpReceiver, OtlpReceiver, attributes
from .prometheus_support import scrape
from .statsd_servers import UdpReceiver

EXPORTERS = ["jsonl", "otlp", "otlp-grpc", "http", "statsd", "dogstatsd", "prometheus"]


class Receiver:
    """A real receiver for one exporter: the variables that point the exporter at it,
    and what it has received."""

    exporter = ""

    def environment(self) -> dict[str, str]:
        raise NotImplementedError

    def values(self, name: str) -> dict[str, list[float]]:
        """The numbers received for metric *name*, by run id."""
        raise NotImplementedError

    def received(self, name: str = "delivery.check") -> set[str]:
        """The run ids that sent metric *name*."""
        return set(self.values(name))


def _by_run(pairs: Any) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for run, value in pairs:
        if run is not None:
            found.setdefault(str(run), []).append(float(value))
    return found


def _json_value(point: dict[str, Any]) -> Any:
    return point["value"] if "value" in point else point["count"]


class JsonlFile(Receiver):
    exporter = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    def environment(self) -> dict[str, str]:
        return {"INSTRUMENT_JSONL_PATH": str(self.path)}

    def values(self, name: str) -> dict[str, list[float]]:
        lines = [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []
        return _by_run((line["tags"].get("run"), _json_value(line)) for line in lines if line["name"] == name)


class Otlp(Receiver):
    exporter = "otlp"

    def __init__(self, receiver: OtlpReceiver | GrpcOtlpReceiver, protocol: str) -> None:
        self.receiver = receiver
        self.protocol = protocol

    def environment(self) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": self.receiver.endpoint,
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": self.protocol,
        }

    def values(self, name: str) -> dict[str, list[float]]:
        pairs = []
        for received in list(self.receiver.received):
            for resource_metrics in received.request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if metric.name != name:
                            continue
                        data = getattr(metric, metric.WhichOneof("data"))
                        for point in data.data_points:
                            run = attributes(point.attributes).get("run")
                            if hasattr(point, "count"):
                                pairs.append((run, point.count))
                            else:
                                pairs.append((run, getattr(point, point.WhichOneof("value"))))
        return _by_run(pairs)


class Http(Receiver):
    exporter = "http"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def environment(self) -> dict[str, str]:
        return {"INSTRUMENT_HTTP_URL": self.endpoint.url}

    def values(self, name: str) -> dict[str, list[float]]:
        return _by_run(
            (point["tags"].get("run"), _json_value(point))
            for request in list(self.endpoint.requests)
            for point in request.document()["points"]
            if point["name"] == name
        )


class Statsd(Receiver):
    def __init__(self, udp: UdpReceiver, flavour: str) -> None:
        self.udp = udp
        self.exporter = flavour
        self.udp.socket.setblocking(False)

    def environment(self) -> dict[str, str]:
        host, port = self.udp.address
        return {"INSTRUMENT_STATSD_ADDRESS": f"{host}:{port}"}

    def values(self, name: str) -> dict[str, list[float]]:
        while True:
            try:
                self.udp.datagrams.append(self.udp.socket.recv(65536))
            except BlockingIOError:
                break
        pairs = []
        for datagram in self.udp.datagrams:
            for line in datagram.decode().splitlines():
                if self.exporter == "statsd" and line.startswith(f"{name}.run_"):
                    run, _, rest = line.removeprefix(f"{name}.run_").partition(":")
                    pairs.append((run, rest.partition("|")[0]))
                elif self.exporter == "dogstatsd" and line.startswith(f"{name}:"):
                    rest = line.removeprefix(f"{name}:")
                    pairs.append((rest.partition("|#run:")[2] or None, rest.partition("|")[0].partition(":")[0]))
        return _by_run(pairs)


class Prometheus(Receiver):
    """This test process serves the endpoint; each run forwards to it, as a descendant."""

    exporter = "prometheus"

    def __init__(self, endpoint: PrometheusExporter) -> None:
        self.endpoint = endpoint

    def environment(self) -> dict[str, str]:
        host, port = self.endpoint.address
        return {"INSTRUMENT_PROMETHEUS_ADDRESS": f"{host}:{port}"}

    def values(self, name: str) -> dict[str, list[float]]:
        base = name.replace(".", "_")
        pairs = []
        for line in scrape(self.endpoint.url)[1].splitlines():
            sample, _, value = line.rpartition(" ")
            family = sample.partition("{")[0]
            if family in (base, f"{base}_total", f"{base}_count"):
                pairs.append((sample.partition('run="')[2].partition('"')[0] or None, value))
        return _by_run(pairs)


@contextmanager
def receiving(kind: str, tmp_path: Path) -> Iterator[Receiver]:
    """The real receiver on 127.0.0.1 for exporter *kind* (``otlp-grpc``: otlp over gRPC)."""
    if kind == "jsonl":
        yield JsonlFile(tmp_path / "delivered.jsonl")
    elif kind == "otlp":
        with OtlpReceiver() as otlp:
            yield Otlp(otlp, "http/protobuf")
    elif kind == "otlp-grpc":
        require_module("grpc")
        with GrpcOtlpReceiver() as grpc:
            yield Otlp(grpc, "grpc")
    elif kind == "http":
        with Endpoint() as endpoint:
            yield Http(endpoint)
    elif kind in ("statsd", "dogstatsd"):
        udp = UdpReceiver()
        try:
            yield Statsd(udp, kind)
        finally:
            udp.close()
    else:
        endpoint = PrometheusExporter(address=("127.0.0.1", 0))
        try:
            yield Prometheus(endpoint)
        finally:
            endpoint.shutdown()

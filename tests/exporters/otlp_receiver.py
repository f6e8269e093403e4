"""Small OTLP metrics receivers on 127.0.0.1, for tests.

`OtlpReceiver` speaks OTLP/HTTP: it decodes each ``POST /v1/metrics`` body (gzip
or deflate as its Content-Encoding says) into an ``ExportMetricsServiceRequest``
and keeps it with the request headers. ``status`` sets the answer: 200 with an
empty ``ExportMetricsServiceResponse`` by default, anything else to simulate a
failing backend. `GrpcOtlpReceiver` does the same over gRPC (needs grpcio).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)


@dataclass
class Received:
    """One request the receiver accepted: its path, headers (lower-cased names) and decoded body."""

    path: str
    headers: dict[str, str]
    request: ExportMetricsServiceRequest


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` serves on ``receiver.endpoint`` until the block ends."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="otlp-receiver", daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The URL for ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/metrics"

    @property
    def base_endpoint(self) -> str:
        """The URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the SDK appends ``/v1/metrics``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The requests received once there are at least *count* of them; AssertionError after *timeout*."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"expected {count} OTLP requests, received {len(self.received)}")
            return list(self.received)

    def _store(self, received: Received) -> None:
        with self._cond:
            self.received.append(received)
            self._cond.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                headers = {key.lower(): value for key, value in self.headers.items()}
                receiver._store(Received(self.path, headers, request))
                answer = ExportMetricsServiceResponse().SerializeToString() if receiver.status == 200 else b"failed"
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read what was received, not the access log."""

        return Handler


class GrpcOtlpReceiver:
    """``with GrpcOtlpReceiver() as receiver:`` serves the OTLP gRPC metrics service on ``receiver.endpoint``."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc

        self.received: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: ExportMetricsServiceRequest, context: Any) -> ExportMetricsServiceResponse:
                headers = {key: value for key, value in context.invocation_metadata()}
                with receiver._cond:
                    receiver.received.append(Received("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                                                      headers, request))
                    receiver._cond.notify_all()
                return ExportMetricsServiceResponse()

        from concurrent.futures import ThreadPoolExecutor

        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), self._server)
        self._port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> GrpcOtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop(grace=None)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"expected {count} OTLP requests, received {len(self.received)}")
            return list(self.received)


def metrics_by_name(received: Received) -> dict[str, Any]:
    """Every metric of one request, by name (one resource, one scope expected)."""
    (resource_metrics,) = received.request.resource_metrics
    (scope_metrics,) = resource_metrics.scope_metrics
    return {metric.name: metric for metric in scope_metrics.metrics}


def attributes(key_values: Any) -> dict[str, Any]:
    """A protobuf ``KeyValue`` list as a plain dict."""
    result = {}
    for kv in key_values:
        value = kv.value
        result[kv.key] = getattr(value, value.WhichOneof("value"))
    return result

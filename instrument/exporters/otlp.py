"""`otlp`: batches to an OpenTelemetry Collector or any OTLP backend.

Our batches are converted into the OpenTelemetry SDK's metrics data model
(``MetricsData``) and sent with the SDK's own OTLP exporter: OTLP/HTTP protobuf by
default, gRPC when ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL=grpc`` and
``opentelemetry-exporter-otlp-proto-grpc`` is installed. Only the SDK's exporter
and data classes are used: recording never goes through OpenTelemetry instruments.

The SDK's exporter reads its own standard variables (endpoint, headers, timeout,
compression, certificates). This module reads the ones that shape the data:

- ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``: ``cumulative`` (default),
  ``delta`` or ``lowmemory``. Our only instruments are synchronous counters and
  histograms, which ``lowmemory`` makes delta too, so it equals ``delta`` here.
- ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION``:
  ``base2_exponential_bucket_histogram`` (our default: our own buckets, exact) or
  ``explicit_bucket_histogram`` (the classic boundaries, ``classic_buckets``, the
  ``le`` boundaries of the Prometheus endpoint; the default ones are boundaries of our
  buckets, so counts are exact; see `explicit_counts`).
- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``: through ``Resource.create()``.

Gauges are reported at every export with their last value, as the SDK does for a
synchronous gauge, so backends do not mark them stale between two sets.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .._buckets import classic_bounds, cumulative_counts
from .._config import ConfigurationError
from .._histogram import HistogramData
from .._model import Batch, Kind, Point
from .._resource import attributes
from .._urls import redact
from . import Exporter, ExportError, MissingDependency, import_what_requests_imports_late
from ._cumulative import Cumulative
from ._unexportable import drop

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["MAX_BUCKETS", "OtlpExportError", "OtlpExporter", "OtlpSettings", "explicit_counts"]

PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
TEMPORALITY_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
AGGREGATION_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"

# OpenTelemetry's default maximum number of buckets per side of an exponential histogram.
MAX_BUCKETS = 160


_GRPC_PACKAGE = "opentelemetry-exporter-otlp-proto-grpc"
_NANOSECONDS = 1_000_000_000


class OtlpExportError(ExportError, RuntimeError):
    """The OTLP backend did not accept a batch (the SDK exporter reported failure)."""


@dataclass(frozen=True)
class OtlpSettings:
    """What the standard ``OTEL_*`` variables ask of this exporter, checked."""

    protocol: str = "http/protobuf"
    protocol_variable: str | None = None  # the variable that chose the protocol, if any
    cumulative: bool = True
    exponential: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> OtlpSettings:
        """Read and check the variables; a bad value raises `ConfigurationError` naming it."""
        protocol, protocol_variable = "http/protobuf", None
        for variable in PROTOCOL_VARIABLES:
            value = environ.get(variable, "").strip().lower()
            if value:
                protocol, protocol_variable = value, variable
                break
        if protocol == "http/json":
            raise ConfigurationError(
                f"{protocol_variable}=http/json is not supported by OpenTelemetry's Python exporters; "
                "use http/protobuf (the default) or grpc"
            )
        if protocol not in ("http/protobuf", "grpc"):
            raise ConfigurationError(
                f"{protocol_variable} is {environ[protocol_variable or '']!r}; use http/protobuf or grpc"
            )
        temporality = environ.get(TEMPORALITY_VARIABLE, "").strip().lower() or "cumulative"
        if temporality not in ("cumulative", "delta", "lowmemory"):
            raise ConfigurationError(
                f"{TEMPORALITY_VARIABLE} is {environ[TEMPORALITY_VARIABLE]!r}; use cumulative, delta or lowmemory"
            )
        aggregation = environ.get(AGGREGATION_VARIABLE, "").strip().lower() or "base2_exponential_bucket_histogram"
        if aggregation not in ("base2_exponential_bucket_histogram", "explicit_bucket_histogram"):
            raise ConfigurationError(
                f"{AGGREGATION_VARIABLE} is {environ[AGGREGATION_VARIABLE]!r}; "
                "use base2_exponential_bucket_histogram or explicit_bucket_histogram"
            )
        return cls(
            protocol=protocol,
            protocol_variable=protocol_variable,
            cumulative=temporality == "cumulative",
            exponential=aggregation == "base2_exponential_bucket_histogram",
        )

    def endpoint(self, environ: Mapping[str, str]) -> str:
        """Where the SDK exporter sends, for messages only (without credentials or query)."""
        specific = environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if self.protocol == "grpc":
            return redact(specific or base or "http://localhost:4317")
        return redact(specific or (base or "http://localhost:4318").rstrip("/") + "/v1/metrics")


class OtlpExporter(Exporter):
    """Sends each batch as one OTLP ``ExportMetricsServiceRequest``.

    Counters become monotonic Sums, gauges Gauges, histograms (timers in seconds)
    ExponentialHistograms at our scale, reduced to at most `MAX_BUCKETS` buckets per
    side, or explicit-bucket Histograms when asked for. With cumulative temporality
    every series seen so far is reported at each export, from the start of the
    interval in which it first appeared.
    """

    name = "otlp"
    options = ("classic_buckets", "resource")

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self.classic_buckets = config.classic_buckets if config is not None else {}
        self.resource_attributes = attributes(config.resource if config is not None else {})
        self.settings = OtlpSettings.from_environ(os.environ)
        self.endpoint = self.settings.endpoint(os.environ)
        self._start_process()

    def __repr__(self) -> str:
        settings = self.settings
        temporality = "cumulative" if settings.cumulative else "delta"
        histograms = "exponential" if settings.exponential else "explicit"
        return f"<OtlpExporter {settings.protocol} {self.endpoint} {temporality} {histograms}>"

    def _start_process(self) -> None:
        """State that belongs to one process: the SDK exporter, totals, the resource."""
        self._pid = os.getpid()
        self._otel = _sdk_exporter(self.settings)
        self._totals = Cumulative()  # counters and histograms, with cumulative temporality
        self._gauges = Cumulative()  # last value of every gauge
        self.resource = _resource(self.resource_attributes)

    def export(self, batch: Batch) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's totals and connections are the parent's to report.
            self._start_process()
        self._gauges.add_points([p for p in batch.points if p.kind == Kind.GAUGE])
        if self.settings.cumulative:
            self._totals.add_points([p for p in batch.points if p.kind != Kind.GAUGE])
            points = self._totals.points()
        else:
            points = [p for p in batch.points if p.kind != Kind.GAUGE]
        points.extend(self._gauges.points())
        if not points:
            return
        data = self._data(points, batch.end_time)
        try:
            # Encoded once more by the SDK exporter, which reports a refused point only
            # as a failed export of the whole batch (or, in older SDKs, raises).
            encode_metrics(data)
        except Exception:
            points = self._encodable(points, batch.end_time)
            if not points:
                return
            data = self._data(points, batch.end_time)
        with _HELD_BACK.capture() as messages:
            result = self._otel.export(data)
        if result is not MetricExportResult.SUCCESS:
            reason = "; ".join(dict.fromkeys(messages))[:500] or "no reason given"
            raise OtlpExportError(f"OTLP export of {len(points)} points to {self.endpoint} failed: {reason}")

    def _data(self, points: list[Point], export_time: float) -> MetricsData:
        return to_metrics_data(
            points,
            self.resource,
            export_time=export_time,
            cumulative=self.settings.cumulative,
            exponential=self.settings.exponential,
            classic=self.classic_buckets,
        )

    def _encodable(self, points: list[Point], export_time: float) -> list[Point]:
        """*points* without those the encoder refuses, each dropped alone and counted; a
        refused cumulative series is forgotten, so it cannot fail every later export."""
        kept = []
        for point in points:
            try:
                encode_metrics(self._data([point], export_time))
            except Exception as exc:  # whatever the SDK's encoder raises for it
                drop(self.name, point, f"{type(exc).__name__}: {exc}")
                self._totals.forget(point)
                self._gauges.forget(point)
            else:
                kept.append(point)
        return kept

    def shutdown(self) -> None:
        with _HELD_BACK.capture():
            self._otel.shutdown()


def to_metrics_data(
    points: Sequence[Point],
    resource: Resource,
    *,
    export_time: float,
    cumulative: bool,
    exponential: bool = True,
    classic: Mapping[str, tuple[float, ...]] | None = None,
) -> MetricsData:
    """Our points as one ``MetricsData``: a metric per (name, kind, unit), a data point per series.

    With *cumulative*, counters and histograms are totals since each point's
    ``start_time`` and are stamped *export_time*; otherwise each covers its own
    interval. Gauges are stamped *export_time*, the time their last value holds at.
    Explicit-bucket histograms have the boundaries *classic* (``classic_buckets``) gives.
    """
    temporality = AggregationTemporality.CUMULATIVE if cumulative else AggregationTemporality.DELTA
    grouped: dict[tuple[str, str, str], list[Point]] = {}
    for point in points:
        grouped.setdefault((point.name, point.kind, point.unit), []).append(point)
    now = _ns(export_time)
    metrics = []
    for (name, kind, unit), series in grouped.items():
        data: Any
        if kind == Kind.COUNTER:
            data = Sum(
                data_points=_number_points(series, now if cumulative else None),
                aggregation_temporality=temporality,
                is_monotonic=True,
            )
        elif kind == Kind.GAUGE:
            data = Gauge(data_points=_number_points(series, now))
        else:
            histogram_type: Any = ExponentialHistogram if exponential else Histogram
            make_point: Any = _exponential_point if exponential else partial(_explicit_point, classic=classic or {})
            data = histogram_type(
                data_points=[
                    make_point(p, p.histogram, now if cumulative else _ns(p.end_time))
                    for p in series
                    if p.histogram is not None
                ],
                aggregation_temporality=temporality,
            )
        metrics.append(Metric(name=name, description="", unit=unit, data=data))
    scope = InstrumentationScope("instrument", _version())
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=resource,
                scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url="")],
                schema_url="",
            )
        ]
    )


def _number_points(series: list[Point], now: int | None) -> list[NumberDataPoint]:
    """A counter's or gauge's data points, stamped *now* (None: each at its interval's end)."""
    return [
        NumberDataPoint(
            attributes=p.tags,
            start_time_unix_nano=_ns(p.start_time),
            time_unix_nano=_ns(p.end_time) if now is None else now,
            value=_number(p.value),
        )
        for p in series
    ]


def downscale(histogram: HistogramData, max_buckets: int = MAX_BUCKETS) -> tuple[int, Buckets, Buckets]:
    """``(scale, positive, negative)`` with at most *max_buckets* buckets on each side.

    Lowering the scale by ``k`` merges ``2**k`` adjacent buckets: bucket ``i`` moves
    to ``i >> k`` (a floor division, right for negative indices too). Both sides
    share one scale, so the side with the wider range decides ``k``.
    """
    shift = 0
    for side in (histogram.positive, histogram.negative):
        if side:
            low, high = min(side), max(side)
            while (high >> shift) - (low >> shift) + 1 > max_buckets:
                shift += 1
    coarse = histogram.downscale(histogram.scale - shift)
    return coarse.scale, _buckets(coarse, "positive"), _buckets(coarse, "negative")


def explicit_counts(histogram: HistogramData, bounds: Sequence[float]) -> list[int]:
    """Counts per explicit bucket ``(bounds[i-1], bounds[i]]``, the last one above all bounds.

    Exact at the default boundaries (powers of sqrt(2): boundaries of our buckets);
    at others, each of our buckets counts where its middle falls (`cumulative_counts`).
    OpenTelemetry's default boundaries (0, 5, 10, ... 10000) suit milliseconds, not
    seconds, and fall inside our buckets: we never use them.
    """
    below = cumulative_counts(histogram, bounds)
    return [below[0], *(b - a for a, b in pairwise(below)), histogram.count - below[-1]]


def _exponential_point(point: Point, histogram: HistogramData, time_ns: int) -> ExponentialHistogramDataPoint:
    scale, positive, negative = downscale(histogram)
    return ExponentialHistogramDataPoint(
        attributes=point.tags,
        start_time_unix_nano=_ns(point.start_time),
        time_unix_nano=time_ns,
        count=histogram.count,
        sum=histogram.sum,
        scale=scale,
        zero_count=histogram.zero_count,
        positive=positive,
        negative=negative,
        flags=0,
        min=histogram.min,
        max=histogram.max,
    )


def _explicit_point(point: Point, histogram: HistogramData, time_ns: int,
                    classic: Mapping[str, tuple[float, ...]]) -> HistogramDataPoint:
    bounds = classic_bounds(point.name, point.unit, classic)
    return HistogramDataPoint(
        attributes=point.tags,
        start_time_unix_nano=_ns(point.start_time),
        time_unix_nano=time_ns,
        count=histogram.count,
        sum=histogram.sum,
        bucket_counts=explicit_counts(histogram, bounds),
        explicit_bounds=list(bounds),
        min=histogram.min,
        max=histogram.max,
    )


def _buckets(histogram: HistogramData, side: str) -> Buckets:
    offset, counts = histogram.dense(side)
    return Buckets(offset=offset, bucket_counts=counts)


def _ns(seconds: float) -> int:
    return int(seconds * _NANOSECONDS)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _number(value: int | float | None) -> int | float:
    """A data point's value: an int that OTLP's ``as_int`` (signed 64-bit) cannot hold is
    sent as a double, as any float is."""
    if value is None:
        return 0
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        return float(value)
    return value


def _version() -> str:
    from .. import __version__

    return __version__


def _resource(found: Mapping[str, str]) -> Resource:
    """``Resource.create()`` with the attributes *found* (`instrument._resource`: the
    ``resource`` option over OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME), with an instance id.

    Each process reports its own cumulative series, so each needs its own
    ``service.instance.id`` (recent SDKs add one; older ones do not).
    """
    resource = Resource.create(dict(found))
    if "service.instance.id" not in resource.attributes:
        resource = resource.merge(Resource({"service.instance.id": str(uuid.uuid4())}))
    return resource


def _sdk_exporter(settings: OtlpSettings) -> Any:
    """The SDK's OTLP metric exporter for the chosen protocol; it reads its own variables."""
    exporter_class: Any
    if settings.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as exporter_class
        except ImportError as exc:
            raise MissingDependency(
                f"{settings.protocol_variable}=grpc needs OpenTelemetry's gRPC exporter: pip install {_GRPC_PACKAGE}"
            ) from exc
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as exporter_class

        import_what_requests_imports_late()  # the SDK's HTTP exporter sends with requests
    exporter = exporter_class()
    _HELD_BACK.attach(type(exporter).__module__)
    return exporter


class _HeldBack(logging.Filter):
    """Holds back the SDK exporter's log records emitted during our calls into it.

    The SDK exporter logs every failed export; our worker already counts each failure
    and logs once until the exporter recovers. The held-back messages become the
    text of our `OtlpExportError`. Records from other threads (an application's own
    OpenTelemetry SDK) pass untouched.
    """

    # The SDK exporters' loggers besides the exporter class's module.
    LOGGERS = ("opentelemetry.exporter.otlp.common.http", "opentelemetry.exporter.otlp.proto.grpc.exporter")

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()
        self._lock = threading.Lock()

    def attach(self, module: str) -> None:
        with self._lock:
            for name in (module, *self.LOGGERS):
                logger = logging.getLogger(name)
                if self not in logger.filters:
                    logger.addFilter(self)

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        messages: list[str] = []
        self._local.messages = messages
        try:
            yield messages
        finally:
            self._local.messages = None

    def filter(self, record: logging.LogRecord) -> bool:
        messages = getattr(self._local, "messages", None)
        if messages is None:
            return True
        messages.append(record.getMessage())
        return False


_HELD_BACK = _HeldBack()

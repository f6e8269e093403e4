"""otlp: our batches as OTLP metrics, sent by the OpenTelemetry SDK's exporter to a real receiver."""

from __future__ import annotations

import bisect
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import instrument
from instrument._buckets import classic_bounds
from instrument._config import ConfigurationError, settings
from instrument._histogram import HistogramState
from instrument._model import Batch, Point
from instrument._process import is_runtime_metric
from instrument.exporters import MissingDependency
from instrument.exporters.otlp import MAX_BUCKETS, OtlpExporter, OtlpExportError, explicit_counts

from ..helpers import counter_total, free_port, require_module
from .otlp_receiver import GrpcOtlpReceiver, OtlpReceiver, Received, attributes, metrics_by_name

CUMULATIVE = 2  # AggregationTemporality values in the protocol
DELTA = 1

OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


def bucket_index(value, scale):
    """The OpenTelemetry exponential bucket of a positive *value*: (base**i, base**(i+1)] holds it."""
    return math.ceil(math.log2(value) * 2**scale) - 1


def ours(received: Received) -> dict:
    """The metrics of one request, without instrument's self-metrics and the runtime metrics."""
    return {
        name: metric for name, metric in metrics_by_name(received).items()
        if not name.startswith("instrument.") and not is_runtime_metric(name)
    }


@pytest.fixture
def otel_env(monkeypatch):
    """A clean OTEL_* environment with a short SDK exporter timeout."""
    for variable in OTEL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    return monkeypatch


@pytest.fixture
def receiver(otel_env):
    with OtlpReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.endpoint)
        yield receiver


@pytest.fixture
def start_otlp(receiver, exported):
    """Configures an OtlpExporter built from the environment as it is then, beside `exported`."""

    def start() -> OtlpExporter:
        exporter = OtlpExporter(settings.current)
        instrument.configure(exporters=[exporter, exported])
        return exporter

    return start


class TestConversion:
    def test_counter_gauge_histogram_and_timer(self, receiver, start_otlp):
        """Each kind arrives with its name, unit, attributes and exact values."""
        start_otlp()

        @instrument.timed("otlp.work", tags={"step": "load"})
        def work():
            time.sleep(0.002)

        instrument.count("otlp.requests", 3, tags={"route": "/a", "ok": True})
        instrument.count("otlp.requests", 2, tags={"route": "/a", "ok": True})
        instrument.count("otlp.requests", 1, tags={"route": "/b", "ok": False})
        instrument.gauge("otlp.queue", 2.5, tags={"queue": "main"})
        for value in (3, 1000, 1000):
            instrument.record("otlp.bytes", value, tags={"kind": "json"})
        work()
        assert instrument.flush(5.0)

        (request,) = receiver.wait_for(1)
        metrics = ours(request)
        assert {"otlp.requests", "otlp.queue", "otlp.bytes", "otlp.work"} == set(metrics)

        requests = metrics["otlp.requests"]
        assert ("", "sum", True, CUMULATIVE) == (
            requests.unit, requests.WhichOneof("data"), requests.sum.is_monotonic,
            requests.sum.aggregation_temporality,
        )
        values = {
            attributes(p.attributes)["route"]: (attributes(p.attributes), p.as_int) for p in requests.sum.data_points
        }
        assert {"/a": ({"route": "/a", "ok": True}, 5), "/b": ({"route": "/b", "ok": False}, 1)} == values

        (queue,) = metrics["otlp.queue"].gauge.data_points
        assert ({"queue": "main"}, 2.5) == (attributes(queue.attributes), queue.as_double)

        (histogram,) = metrics["otlp.bytes"].exponential_histogram.data_points
        assert ({"kind": "json"}, 3, 2003, 3, 1000) == (
            attributes(histogram.attributes), histogram.count, histogram.sum, histogram.min, histogram.max,
        )
        # 3 and 1000 are 537 buckets apart at scale 6: two halvings bring them within 160.
        low, high = bucket_index(3, 4), bucket_index(1000, 4)
        assert (4, 0, low) == (histogram.scale, histogram.zero_count, histogram.positive.offset)
        assert [1] + [0] * (high - low - 1) + [2] == list(histogram.positive.bucket_counts)
        assert [] == list(histogram.negative.bucket_counts)

        work_metric = metrics["otlp.work"]
        (timer,) = work_metric.exponential_histogram.data_points
        assert ("s", {"step": "load"}, 1) == (work_metric.unit, attributes(timer.attributes), timer.count)
        assert 0.002 <= timer.min == timer.max == timer.sum < 1.0
        assert (6, [1]) == (timer.scale, list(timer.positive.bucket_counts))
        base = 2 ** 2**-6
        assert base**timer.positive.offset < timer.sum * (1 + 1e-9)
        assert timer.sum <= base ** (timer.positive.offset + 1) * (1 + 1e-9)

    def test_timestamps_are_the_interval_in_nanoseconds(self, receiver, start_otlp):
        """A point spans from the start of its first interval to the export, in Unix nanoseconds."""
        start_otlp()
        before = time.time_ns()
        instrument.count("otlp.stamped")
        assert instrument.flush(5.0)
        after = time.time_ns()
        (point,) = ours(receiver.wait_for(1)[0])["otlp.stamped"].sum.data_points
        assert point.start_time_unix_nano <= before <= point.time_unix_nano <= after

    def test_scope_and_resource(self, receiver, start_otlp, otel_env):
        """The scope names instrument; the resource comes from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES."""
        otel_env.setenv("OTEL_SERVICE_NAME", "checkout")
        otel_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=payments")
        start_otlp()
        instrument.count("otlp.resource")
        assert instrument.flush(5.0)

        (resource_metrics,) = receiver.wait_for(1)[0].request.resource_metrics
        resource = attributes(resource_metrics.resource.attributes)
        assert "checkout" == resource["service.name"]
        assert ("test", "payments") == (resource["deployment.environment"], resource["team"])
        assert resource["service.instance.id"]
        (scope_metrics,) = resource_metrics.scope_metrics
        assert ("instrument", instrument.__version__) == (scope_metrics.scope.name, scope_metrics.scope.version)

    def test_the_resource_option_wins_over_the_environment(self, receiver, exported, otel_env):
        """configure(resource=...) sets attributes over OTEL_SERVICE_NAME's and OTEL_RESOURCE_ATTRIBUTES'."""
        otel_env.setenv("OTEL_SERVICE_NAME", "checkout")
        otel_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments")
        instrument.configure(exporters=["otlp", exported],
                             resource={"service.name": "billing", "deployment.environment.name": "prod"})
        try:
            instrument.count("otlp.resource.option")
            assert instrument.flush(5.0)
            (resource_metrics,) = receiver.wait_for(1)[0].request.resource_metrics
        finally:
            instrument.configure(resource={})
        resource = attributes(resource_metrics.resource.attributes)
        assert ("billing", "prod", "payments") == (
            resource["service.name"], resource["deployment.environment.name"], resource["team"]
        )

    def test_self_metrics_are_exported_like_any_other(self, receiver, start_otlp):
        """instrument.* metrics, such as the exporter's own batch count, are sent too."""
        start_otlp()
        instrument.count("otlp.self")
        assert instrument.flush(5.0)
        assert instrument.flush(5.0)
        second = metrics_by_name(receiver.wait_for(2)[1])
        batches = {
            attributes(p.attributes)["exporter"]: p.as_int
            for p in second["instrument.export.batches"].sum.data_points
        }
        assert 1 == batches["otlp"]


class TestTemporality:
    def test_cumulative_by_default(self, receiver, start_otlp):
        """Counters and histograms add up across exports from a fixed start; gauges repeat their last value."""
        start_otlp()
        instrument.count("otlp.total", 2)
        instrument.record("otlp.size", 10)
        instrument.gauge("otlp.level", 7)
        assert instrument.flush(5.0)
        instrument.count("otlp.total", 3)
        instrument.record("otlp.size", 10)
        assert instrument.flush(5.0)

        first, second = (ours(r) for r in receiver.wait_for(2))
        (total1,), (total2,) = first["otlp.total"].sum.data_points, second["otlp.total"].sum.data_points
        assert (2, 5) == (total1.as_int, total2.as_int)
        assert CUMULATIVE == second["otlp.total"].sum.aggregation_temporality
        assert total1.start_time_unix_nano == total2.start_time_unix_nano
        assert total1.time_unix_nano < total2.time_unix_nano
        (size1,), (size2,) = (m["otlp.size"].exponential_histogram.data_points for m in (first, second))
        assert (1, 2, 20) == (size1.count, size2.count, size2.sum)
        assert [2] == list(size2.positive.bucket_counts)
        assert size1.start_time_unix_nano == size2.start_time_unix_nano
        (level2,) = second["otlp.level"].gauge.data_points
        assert (7, total2.time_unix_nano) == (level2.as_int, level2.time_unix_nano)

    @pytest.mark.parametrize("preference", ["delta", "lowmemory", "DELTA"])
    def test_delta_and_lowmemory(self, receiver, start_otlp, otel_env, preference):
        """With delta (and lowmemory, the same for our counters and histograms) each export covers its interval."""
        otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
        start_otlp()
        instrument.count("otlp.total", 2)
        instrument.record("otlp.size", 10)
        instrument.gauge("otlp.level", 7)
        assert instrument.flush(5.0)
        instrument.count("otlp.total", 3)
        assert instrument.flush(5.0)

        first, second = (ours(r) for r in receiver.wait_for(2))
        (total1,), (total2,) = first["otlp.total"].sum.data_points, second["otlp.total"].sum.data_points
        assert (2, 3) == (total1.as_int, total2.as_int)
        assert (DELTA, DELTA) == (
            second["otlp.total"].sum.aggregation_temporality,
            first["otlp.size"].exponential_histogram.aggregation_temporality,
        )
        assert total1.time_unix_nano == total2.start_time_unix_nano
        assert "otlp.size" not in second  # nothing recorded in the second interval
        assert 7 == second["otlp.level"].gauge.data_points[0].as_int


class TestExponentialBuckets:
    def test_wide_range_is_downscaled_to_160_buckets(self, receiver, start_otlp):
        """Values over twelve decades keep every count, at the highest scale that fits 160 buckets."""
        start_otlp()
        values = [1.3 * 10.0**e for e in range(-6, 7)]
        for value in values:
            instrument.record("otlp.wide", value)
        assert instrument.flush(5.0)

        (point,) = ours(receiver.wait_for(1)[0])["otlp.wide"].exponential_histogram.data_points
        scale = next(
            s for s in range(6, -11, -1)
            if bucket_index(max(values), s) - bucket_index(min(values), s) + 1 <= MAX_BUCKETS
        )
        assert 1 == scale  # about 40 octaves: at scale 2 (4 buckets an octave) it would take 161
        counts = [0] * (bucket_index(max(values), scale) - bucket_index(min(values), scale) + 1)
        for value in values:
            counts[bucket_index(value, scale) - bucket_index(min(values), scale)] += 1
        assert (scale, bucket_index(min(values), scale), counts) == (
            point.scale, point.positive.offset, list(point.positive.bucket_counts),
        )
        assert len(values) == point.count

    def test_negative_values_and_zeros(self, receiver, start_otlp):
        """Negative values fill the negative buckets, zeros the zero count, on one shared scale."""
        start_otlp()
        for value in (-2.5, -2.5, 0, 4.0 * 1.01):
            instrument.record("otlp.signed", value)
        assert instrument.flush(5.0)

        (point,) = ours(receiver.wait_for(1)[0])["otlp.signed"].exponential_histogram.data_points
        assert (4, 1, -2.5, 4.04) == (point.count, point.zero_count, point.min, point.max)
        assert (6, bucket_index(2.5, 6), [2]) == (
            point.scale, point.negative.offset, list(point.negative.bucket_counts),
        )
        assert (bucket_index(4.04, 6), [1]) == (point.positive.offset, list(point.positive.bucket_counts))

    def test_narrow_range_keeps_full_precision(self, receiver, start_otlp):
        """Within 160 buckets, the histogram keeps scale 6."""
        start_otlp()
        for value in (100, 120, 140):
            instrument.record("otlp.narrow", value)
        assert instrument.flush(5.0)

        (point,) = ours(receiver.wait_for(1)[0])["otlp.narrow"].exponential_histogram.data_points
        assert (6, bucket_index(100, 6)) == (point.scale, point.positive.offset)
        assert 3 == sum(point.positive.bucket_counts)


class TestExplicitBuckets:
    def test_explicit_bucket_histogram_has_exact_counts_at_the_classic_bounds(self, receiver, start_otlp, otel_env):
        """explicit_bucket_histogram: boundaries are the classic ones, powers of sqrt(2) chosen by
        unit (the Prometheus endpoint's le values), which are boundaries of our buckets too, so
        every count is exact, values on a boundary included."""
        otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "explicit_bucket_histogram")
        start_otlp()
        values = [0, 3, 7, 7, 8, 8.000001, 64, 65, 2**40]  # 8 and 64 sit on boundaries
        for value in values:
            instrument.record("otlp.explicit", value, tags={"k": "v"})
        seconds = [0.0009, 0.001, 0.0625, 0.0626, 0.3, 100.0]  # 2**-4 s = 0.0625 is a boundary
        for value in seconds:
            instrument.record("otlp.explicit.seconds", value, unit="s")
        assert instrument.flush(5.0)

        metrics = ours(receiver.wait_for(1)[0])
        metric = metrics["otlp.explicit"]
        assert ("histogram", CUMULATIVE) == (metric.WhichOneof("data"), metric.histogram.aggregation_temporality)
        for name, unit_values in (("otlp.explicit", values), ("otlp.explicit.seconds", seconds)):
            (point,) = metrics[name].histogram.data_points
            bounds = list(point.explicit_bounds)
            assert bounds == list(classic_bounds(name, "s" if name.endswith("seconds") else "", {}))
            expected = [0] * (len(bounds) + 1)
            for value in unit_values:  # OpenTelemetry's buckets: (bounds[i-1], bounds[i]]
                expected[bisect.bisect_left(bounds, value)] += 1
            assert expected == list(point.bucket_counts), name
        (point,) = metric.histogram.data_points
        assert ({"k": "v"}, len(values), sum(values), 0, 2**40) == (
            attributes(point.attributes), point.count, point.sum, point.min, point.max,
        )

    def test_configured_classic_buckets_are_the_explicit_bounds(self, receiver, exported, otel_env):
        """classic_buckets for a metric gives its explicit bounds; each count is where its values are."""
        otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "explicit_bucket_histogram")
        instrument.configure(exporters=["otlp", exported], classic_buckets={"otlp.slo": [0.1, 0.3, 1.0]})
        try:
            for value in (0.05, 0.2, 0.25, 0.5, 2.0):
                instrument.record("otlp.slo", value, unit="s")
            assert instrument.flush(5.0)
            (point,) = ours(receiver.wait_for(1)[0])["otlp.slo"].histogram.data_points
        finally:
            instrument.configure(classic_buckets={})
        assert ([0.1, 0.3, 1.0], [1, 2, 1, 1]) == (list(point.explicit_bounds), list(point.bucket_counts))

    def test_a_coarser_histogram_is_counted_by_bucket_middles(self):
        """Below scale 0 a bucket straddles powers of two: it is counted where its middle falls."""
        state = HistogramState()
        state.add_many([0.3, 3.0, 30.0, 300.0])
        coarse = state.freeze().downscale(-1)
        counts = explicit_counts(coarse, classic_bounds("x", "", {}))
        assert 4 == sum(counts) and len(classic_bounds("x", "", {})) + 1 == len(counts)


class TestOwnTraffic:
    def test_the_exporters_posts_are_never_recorded_by_the_http_client_hooks(self, receiver, start_otlp, exported):
        """The SDK's exporter posts with requests on our suppressed export thread: with the HTTP
        client integrations installed, those posts never show up as client metrics."""
        import instrument.auto

        instrument.auto.install(include=["http_client", "urllib3", "requests"])
        try:
            start_otlp()
            for _ in range(3):
                instrument.count("otlp.own.traffic")
                assert instrument.flush(5.0)
            assert 3 <= len(receiver.wait_for(3))
        finally:
            instrument.auto.uninstall(["http_client", "urllib3", "requests"])
        clients = [p for b in exported.batches for p in b.points if p.name == "http.client.request.duration"]
        assert [] == clients
        assert 3 == counter_total(exported, "otlp.own.traffic")


class TestFork:
    def test_forked_child_reports_its_own_series(self, receiver):
        """After fork() a child's exporter starts its own totals and service.instance.id."""
        exporter = OtlpExporter(settings.current)

        def counted(n):
            return Batch(1, 1.0, 2.0, [Point("otlp.forked", "counter", "", {}, 1.0, 2.0, value=n)], n)

        exporter.export(counted(5))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                exporter.export(counted(2))
                code = 0
            finally:
                os._exit(code)
        assert 0 == os.waitpid(pid, 0)[1]
        exporter.shutdown()

        parent, child = receiver.wait_for(2)
        assert [5, 2] == [ours(r)["otlp.forked"].sum.data_points[0].as_int for r in (parent, child)]
        parent_id, child_id = (
            attributes(r.request.resource_metrics[0].resource.attributes)["service.instance.id"]
            for r in (parent, child)
        )
        assert parent_id != child_id


class TestEnvironment:
    def test_base_endpoint_headers_and_compression(self, receiver, start_otlp, otel_env):
        """The SDK exporter reads OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS and _COMPRESSION itself."""
        otel_env.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base_endpoint)
        otel_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret-value,x-team=payments")
        otel_env.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        exporter = start_otlp()
        instrument.count("otlp.headers")
        assert instrument.flush(5.0)

        (request,) = receiver.wait_for(1)
        assert ("/v1/metrics", "gzip", "application/x-protobuf") == (
            request.path, request.headers["content-encoding"], request.headers["content-type"],
        )
        assert ("s3cret-value", "payments") == (request.headers["x-api-key"], request.headers["x-team"])
        assert "otlp.headers" in ours(request)
        assert "s3cret" not in repr(exporter)

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes"),
            ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "summary"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "udp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ],
    )
    def test_bad_values_name_the_variable(self, otel_env, variable, value):
        """A value the exporter cannot use fails at construction, naming the variable and its value."""
        otel_env.setenv(variable, value)
        with pytest.raises(ConfigurationError, match=variable) as raised:
            OtlpExporter(settings.current)
        assert repr(value) in str(raised.value) or f"={value}" in str(raised.value)

    def test_grpc_without_its_package_names_it(self, otel_env):
        """Asking for grpc without opentelemetry-exporter-otlp-proto-grpc says what to install."""
        otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        otel_env.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", None)
        with pytest.raises(MissingDependency, match="OTEL_EXPORTER_OTLP_PROTOCOL=grpc .*pip install "
                                                     "opentelemetry-exporter-otlp-proto-grpc"):
            OtlpExporter(settings.current)

    def test_grpc(self, otel_env, exported):
        """With the metrics protocol set to grpc, the SDK's gRPC exporter delivers the same metrics."""
        require_module("grpc")
        pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.metric_exporter")
        with GrpcOtlpReceiver() as receiver:
            otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
            otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.endpoint)
            otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-api-key=over-grpc")
            instrument.configure(exporters=[OtlpExporter(settings.current)])
            instrument.count("otlp.grpc", 4)
            assert instrument.flush(5.0)
            (request,) = receiver.wait_for(1)
            instrument.configure(exporters=[exported])
        assert "over-grpc" == request.headers["x-api-key"]
        assert 4 == ours(request)["otlp.grpc"].sum.data_points[0].as_int


class TestFailures:
    def test_rejected_export_is_counted_and_the_sdk_log_held_back(self, otel_env, exported, caplog):
        """A receiver answering 500 makes export() fail: counted once per batch, no log flood from the SDK."""
        with OtlpReceiver(status=500) as receiver:
            otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.endpoint)
            instrument.configure(exporters=[OtlpExporter(settings.current), exported])
            instrument.count("otlp.failing")
            assert instrument.flush(5.0)
            assert instrument.flush(5.0)
            receiver.wait_for(2)
            instrument.configure(exporters=[exported])
        assert 1 == counter_total(exported, "instrument.export.failures", {"exporter": "otlp"})
        assert [] == [r for r in caplog.records if r.name.startswith("opentelemetry")]

    def test_a_point_the_encoder_refuses_is_dropped_alone_and_forgotten(self, receiver, exported):
        """The rest of its batch is sent, and the refused cumulative series is not re-sent to fail again."""
        exporter = OtlpExporter(settings.current)
        refused = Point("otlp.refused", "gauge", "", {}, 1.0, 2.0, value="not a number")
        exporter.export(Batch(1, 1.0, 2.0, [refused, Point("otlp.fine", "counter", "", {}, 1.0, 2.0, value=2)], 2))
        exporter.export(Batch(2, 2.0, 3.0, [Point("otlp.fine", "counter", "", {}, 2.0, 3.0, value=3)], 3))
        first, second = receiver.wait_for(2)
        exporter.shutdown()
        assert ["otlp.fine"] == list(ours(first)) == list(ours(second))
        assert 5 == ours(second)["otlp.fine"].sum.data_points[0].as_int
        instrument.flush(5.0)
        dropped = {"reason": "unexportable", "exporter": "otlp"}
        assert 1 == counter_total(exported, "instrument.records.dropped", dropped)

    def test_export_raises_with_the_reason(self, otel_env):
        """export() raises OtlpExportError carrying what the SDK exporter reported."""
        with OtlpReceiver(status=500) as receiver:
            otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.endpoint)
            exporter = OtlpExporter(settings.current)
            batch = Batch(1, 1.0, 2.0, [Point("otlp.direct", "counter", "", {}, 1.0, 2.0, value=1)], 1)
            # The SDK's words: "code: 500, reason: Internal Server Error" (1.45), "Transient
            # error Internal Server Error ..." (retried until its timeout, before 1.45).
            reason = r"failed: .*(500|Internal Server Error)"
            with pytest.raises(OtlpExportError, match=r"to http://127\.0\.0\.1:\d+/v1/metrics " + reason):
                exporter.export(batch)
            exporter.shutdown()

    def test_unreachable_endpoint_fails_within_the_sdk_timeout(self, otel_env):
        """Nothing listening: export() fails within OTEL_EXPORTER_OTLP_TIMEOUT, not later."""
        otel_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        otel_env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{free_port()}/v1/metrics")
        exporter = OtlpExporter(settings.current)
        batch = Batch(1, 1.0, 2.0, [Point("otlp.unreachable", "counter", "", {}, 1.0, 2.0, value=1)], 1)
        started = time.monotonic()
        with pytest.raises(OtlpExportError):
            exporter.export(batch)
        assert time.monotonic() - started < 3.0
        exporter.shutdown()




def rotel_agent() -> str:
    """The collector binary shipped by the `rotel` package; skip without it (fail in CI)."""
    rotel = require_module("rotel")
    return str(Path(rotel.__file__).parent / "rotel-agent")


def _rotel_environment() -> dict[str, str]:
    """rotel-agent embeds the interpreter it was built for: let it find that libpython
    (pyenv keeps it in its own lib directory, off the loader's default path)."""
    import sysconfig

    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p]
    return {**os.environ, "NO_COLOR": "1", "LD_LIBRARY_PATH": os.pathsep.join(paths)}


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the collector exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the collector did not listen on port {port} within {timeout}s")


class TestThroughACollector:
    def test_rotel_collector_forwards_our_metrics(self, otel_env, exported, tmp_path):
        """A real collector (rotel) accepts our OTLP/HTTP and forwards the metrics unchanged."""
        agent = rotel_agent()
        with OtlpReceiver() as downstream:
            http_port, grpc_port = free_port(), free_port()
            with open(tmp_path / "rotel.log", "wb") as log:
                process = subprocess.Popen(
                    [
                        agent, "start",
                        "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
                        "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
                        "--exporter", "otlp",
                        "--otlp-exporter-protocol", "http",
                        "--otlp-exporter-endpoint", downstream.base_endpoint,
                        "--disable-batching",
                        "--pid-file", str(tmp_path / "rotel.pid"),
                        "--log-file", str(tmp_path / "rotel-agent.log"),
                    ],
                    stdout=log, stderr=subprocess.STDOUT, env=_rotel_environment(),
                )
            try:
                wait_for_port(http_port, process)
                otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{http_port}")
                otel_env.setenv("OTEL_SERVICE_NAME", "via-rotel")
                instrument.configure(exporters=[OtlpExporter(settings.current)])
                instrument.count("otlp.collected", 6, tags={"k": "v"})
                for value in (3, 1000, 1000):
                    instrument.record("otlp.collected.bytes", value)
                assert instrument.flush(5.0)
                instrument.configure(exporters=[exported])
                (request,) = downstream.wait_for(1, timeout=15.0)
            finally:
                process.terminate()
                try:
                    process.wait(5.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5.0)
        (resource_metrics,) = request.request.resource_metrics
        assert "via-rotel" == attributes(resource_metrics.resource.attributes)["service.name"]
        metrics = ours(request)
        (counter,) = metrics["otlp.collected"].sum.data_points
        assert ({"k": "v"}, 6) == (attributes(counter.attributes), counter.as_int)
        (histogram,) = metrics["otlp.collected.bytes"].exponential_histogram.data_points
        assert (3, 2003, 4, bucket_index(3, 4)) == (histogram.count, histogram.sum, histogram.scale,
                                                     histogram.positive.offset)
        assert [1] + [0] * 133 + [2] == list(histogram.positive.bucket_counts)

"""prometheus, the protobuf format: negotiation, the wire encoding checked by protobuf's own
parser, native histograms mapped exactly, and the real Prometheus server's quantiles."""

from __future__ import annotations

import math
import os
import random

import pytest

import instrument
from instrument._config import Config
from instrument._histogram import HistogramData, HistogramState
from instrument._model import Batch, Point
from instrument.exporters.prometheus import PrometheusExporter
from instrument.exporters.prometheus._native import ZERO_THRESHOLD, native
from instrument.exporters.prometheus._negotiation import OPENMETRICS, PROTOBUF, TEXT, choose_format
from instrument.exporters.prometheus._wire import packed_sint, sint, uint, varint
from instrument.testing import capture

from ..helpers import require_module
from .prometheus_support import PROTOBUF_ACCEPT, decode_delimited, go_float, samples, scrape, scrape_bytes

PROTOBUF_TYPE = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


def histogram_of(values, scale=6):
    state = HistogramState()
    state.add_many(list(values))
    frozen = state.freeze()
    return frozen.downscale(scale) if scale < frozen.scale else frozen


def native_counts(found):
    """{native index: count} of one side, from spans and deltas."""
    spans, deltas = found
    counts = {}
    index, running, position = 0, 0, 0
    for number, (offset, length) in enumerate(spans):
        index = offset if number == 0 else index + offset
        for _ in range(length):
            running += deltas[position]
            position += 1
            counts[index] = running
            index += 1
    assert len(deltas) == position
    return counts


def batch(*points):
    return Batch(1, 0.0, 1.0, list(points), len(points))


class TestWire:
    def test_varints_are_base_128_least_significant_first(self):
        """300 is two bytes, AC 02, as the protobuf encoding guide writes it."""
        assert (b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02") == tuple(map(varint, (0, 1, 127, 128, 300)))

    def test_signed_fields_zigzag(self):
        """sint fields map 0, -1, 1, -2 to 0, 1, 2, 3; zeros (the default) are left out."""
        assert [b"", b"\x08\x01", b"\x08\x02", b"\x08\x03"] == [sint(1, v) for v in (0, -1, 1, -2)]
        assert b"" == uint(1, 0) == packed_sint(2, [])


class TestNegotiation:
    @pytest.mark.parametrize(
        ("accept", "expected"),
        [
            (PROTOBUF_ACCEPT, PROTOBUF),
            ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", OPENMETRICS),
            ("", TEXT),
            ("*/*", TEXT),
            ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", TEXT),
            ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,"
             "application/openmetrics-text;version=1.0.0;q=0.5", OPENMETRICS),
        ],
    )
    def test_the_best_quality_wins_and_protobuf_only_when_named(self, accept, expected):
        """The scraper's preferred format is served; protobuf only delimited MetricFamily messages."""
        assert expected == choose_format(accept)


class TestNativeMapping:
    def test_every_value_is_in_the_native_bucket_that_covers_it(self):
        """Native bucket j holds the values in (base**(j-1), base**j]: our index plus one, exactly."""
        values = [0.001 * 1.013**k for k in range(400)] + [0.0, 0.0, -0.5, -0.25]  # 480 buckets
        found = native(histogram_of(values))
        assert found is not None
        base = 2 ** (2**-found.schema)
        expected_positive = {}
        expected_negative = {}
        for value in values:
            if value == 0:
                continue
            side = expected_positive if value > 0 else expected_negative
            index = math.ceil(math.log(abs(value), base) - 1e-9)
            side[index] = side.get(index, 0) + 1
        assert (6, 2) == (found.schema, found.zero_count)
        assert expected_positive == native_counts((found.positive_spans, found.positive_deltas))
        assert expected_negative == native_counts((found.negative_spans, found.negative_deltas))

    def test_a_wide_histogram_is_coarsened_to_the_bucket_limit(self):
        """More populated buckets than a limit: the schema drops until they fit, no count lost."""
        values = [1e-6 * 1.005**k for k in range(2000)]  # 1 us .. 22 ms, 14.4 octaves: 920 buckets at scale 6
        found = native(histogram_of(values), max_buckets=160)
        counts = native_counts((found.positive_spans, found.positive_deltas))
        assert (3, len(values)) == (found.schema, sum(counts.values()))
        assert len(counts) <= 160 < len(native(histogram_of(values)).positive_deltas)

    def test_an_empty_histogram_is_still_native(self):
        """No observation yet: a no-op span, so that Prometheus takes it for a native histogram."""
        found = native(HistogramData(count=0, sum=0.0, min=math.inf, max=-math.inf))
        assert ([(0, 0)], [], 0) == (found.positive_spans, found.positive_deltas, found.zero_count)

    def test_scales_beyond_prometheus_range(self):
        """A finer scale is served at schema 8; coarser than -4 is not served natively."""
        fine = HistogramData(count=1, sum=1.5, min=1.5, max=1.5, scale=10, positive={599: 1})
        assert 8 == native(fine).schema
        assert None is native(histogram_of([1.0, 1e300], scale=-5))

    def test_values_in_the_zero_bucket_are_counted_there(self):
        """Values at or below the 2**-128 zero threshold are counted in the zero bucket."""
        found = native(histogram_of([1e-300, 0.0, 1.0]))
        assert 2.0**-128 == ZERO_THRESHOLD
        assert (2, {0: 1}) == (found.zero_count, native_counts((found.positive_spans, found.positive_deltas)))


class TestProtobufFormat:
    def test_served_when_asked_and_read_by_protobuf(self, exporter):
        """Asked for protobuf, the endpoint answers delimited MetricFamily messages protobuf parses."""
        require_module("google.protobuf")
        with capture() as captured:
            instrument.count("pb.jobs", 3, tags={"queue": "mail"})
            instrument.gauge("pb.depth", 2.5)
            for value in (0.002, 0.004, 0.5):
                instrument.record("pb.latency", value, tags={"route": "/x"}, unit="s")
        exporter.export(batch(*captured.points))
        content_type, body = scrape_bytes(exporter.url, {"Accept": PROTOBUF_ACCEPT})
        assert PROTOBUF_TYPE == content_type
        families = {family.name: family for family in decode_delimited(body)}
        assert ["pb_depth", "pb_jobs_total", "pb_latency_seconds"] == sorted(families)
        jobs, depth, latency = families["pb_jobs_total"], families["pb_depth"], families["pb_latency_seconds"]
        assert (0, "pb.jobs", 3.0, [("queue", "mail")]) == (
            jobs.type, jobs.help, jobs.metric[0].counter.value, [(x.name, x.value) for x in jobs.metric[0].label]
        )
        assert (1, 2.5) == (depth.type, depth.metric[0].gauge.value)
        histogram = latency.metric[0].histogram
        assert (4, 3, pytest.approx(0.506), 6, 2.0**-128) == (
            latency.type, histogram.sample_count, histogram.sample_sum, histogram.schema, histogram.zero_threshold
        )
        assert 3 == sum(native_counts((list((s.offset, s.length) for s in histogram.positive_span),
                                       list(histogram.positive_delta))).values())

    def test_classic_buckets_match_the_text_format(self, exporter):
        """The same family carries the text format's le buckets, for scrapers ingesting classic ones."""
        require_module("google.protobuf")
        with capture() as captured:
            for value in (0.001, 0.25, 0.3, 2.0, 100.0):
                instrument.record("pb.classic", value, unit="s")
        exporter.export(batch(*captured.points))
        text = {key: int(value) for key, value in samples(scrape(exporter.url)[1]).items() if "_bucket" in key}
        (family,) = decode_delimited(scrape_bytes(exporter.url, {"Accept": PROTOBUF_ACCEPT})[1])
        buckets = {
            f'pb_classic_seconds_bucket{{le="{go_float(b.upper_bound)}"}}': b.cumulative_count
            for b in family.metric[0].histogram.bucket
        }
        buckets['pb_classic_seconds_bucket{le="+Inf"}'] = family.metric[0].histogram.sample_count
        assert text == buckets

    def test_the_bucket_limit_option_coarsens_what_is_served(self):
        """prometheus_native_max_buckets: a histogram wider than the limit is served at a coarser schema."""
        require_module("google.protobuf")
        limited = PrometheusExporter(Config(prometheus_address=("127.0.0.1", 0), prometheus_native_max_buckets=20))
        try:
            with capture() as captured:
                for k in range(200):
                    instrument.record("pb.wide", 0.001 * 1.02**k, unit="s")
            limited.export(batch(*captured.points))
            (family,) = decode_delimited(scrape_bytes(limited.url, {"Accept": PROTOBUF_ACCEPT})[1])
        finally:
            limited.shutdown()
        histogram = family.metric[0].histogram
        assert (1, 200) == (histogram.schema, sum(native_counts(  # 5.7 octaves: 23 buckets at schema 2
            ([(s.offset, s.length) for s in histogram.positive_span], list(histogram.positive_delta))
        ).values()))
        assert len(histogram.positive_delta) <= 20

    def test_gzip_and_the_same_points_as_text(self, exporter):
        """Gzipped when accepted; a counter reads the same as in text."""
        require_module("google.protobuf")
        exporter.export(batch(Point("pb.zipped", "counter", "", {}, 0.0, 1.0, value=9)))
        headers = {"Accept": PROTOBUF_ACCEPT, "Accept-Encoding": "gzip"}
        (family,) = decode_delimited(scrape_bytes(exporter.url, headers)[1])
        assert (9.0, "9") == (family.metric[0].counter.value, samples(scrape(exporter.url)[1])["pb_zipped_total"])


def exact_quantile(values, q):
    """Nearest rank, as the report computes it from raw values."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.once
class TestPrometheusNativeHistograms:
    def test_histogram_quantile_is_within_two_percent_across_workers(self, endpoint, prometheus_server):
        """Prometheus with native histograms: histogram_quantile at 0.5, 0.9, 0.99 of what three
        forked workers recorded lands within 2 % of the exact quantiles of the values."""
        workers = 3
        generators = [random.Random(seed) for seed in range(workers)]
        per_worker = [[rng.lognormvariate(math.log(0.05), 0.35) for _ in range(3000)] for rng in generators]
        assert 8000 < len({value for values in per_worker for value in values})
        children = []
        for values in per_worker:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for value in values:
                        instrument.record("native.latency", value, tags={"route": "/loans"}, unit="s")
                    code = 0 if instrument.flush(5.0) and endpoint.role == "forwarder" else 2
                finally:
                    os._exit(code)
            children.append(pid)
        assert [0] * workers == [os.waitpid(pid, 0)[1] for pid in children]
        everything = [value for values in per_worker for value in values]
        host, port = endpoint.address
        server = prometheus_server(f"{host}:{port}", features=("native-histograms",))
        server.wait_for_value('histogram_count(native_latency_seconds{route="/loans"})', len(everything))
        errors = {}
        for q in (0.5, 0.9, 0.99):
            (found,) = server.query(f'histogram_quantile({q}, native_latency_seconds{{route="/loans"}})')
            shown, exact = float(found["value"][1]), exact_quantile(everything, q)
            errors[q] = abs(shown - exact) / exact
        assert {q: True for q in errors} == {q: error < 0.02 for q, error in errors.items()}, errors

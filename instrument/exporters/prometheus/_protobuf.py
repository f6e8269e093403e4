"""The protobuf exposition format: length-delimited ``io.prometheus.client.MetricFamily``.

The format Prometheus asks for first once native histograms are enabled
(``--enable-feature=native-histograms``, or ``scrape_native_histograms``): the only
one that carries them. Every histogram is served twice in one ``Histogram`` message:
as a native histogram (`_native`: our exponential buckets, exact) and with the same
classic ``le`` buckets as the text formats (`_text`), so a scraper that ingests classic
histograms only sees what it would have seen in text. Names, labels and which metric
wins a clash are `_naming`'s, as for the text formats.

The messages (field numbers of prometheus/client_model's ``metrics.proto``)::

    MetricFamily { name = 1; help = 2; type = 3; repeated Metric metric = 4 }
    Metric       { repeated LabelPair label = 1; Gauge gauge = 2; Counter counter = 3;
                   Histogram histogram = 7 }
    LabelPair    { name = 1; value = 2 }
    Gauge, Counter { double value = 1 }
    Histogram    { uint64 sample_count = 1; double sample_sum = 2; repeated Bucket bucket = 3;
                   sint32 schema = 5; double zero_threshold = 6; uint64 zero_count = 7;
                   repeated BucketSpan negative_span = 9; repeated sint64 negative_delta = 10;
                   repeated BucketSpan positive_span = 12; repeated sint64 positive_delta = 13 }
    Bucket       { uint64 cumulative_count = 1; double upper_bound = 2 }
    BucketSpan   { sint32 offset = 1; uint32 length = 2 }
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..._buckets import classic_bounds, cumulative_counts
from ..._histogram import HistogramData
from ..._model import Kind, Point
from ._naming import distinct, families
from ._native import ZERO_THRESHOLD, native
from ._wire import double, message, packed_sint, sint, string, uint, varint

__all__ = ["PROTOBUF_CONTENT_TYPE", "render_protobuf"]

PROTOBUF_CONTENT_TYPE = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

_TYPES = {Kind.COUNTER: 0, Kind.GAUGE: 1, Kind.HISTOGRAM: 4}


def render_protobuf(points: list[Point], max_buckets: int = 0,
                    classic: Mapping[str, tuple[float, ...]] | None = None) -> bytes:
    """Cumulative *points* as length-delimited MetricFamily messages; native histograms
    keep at most *max_buckets* populated buckets if it is not 0 (`_native.native`);
    *classic*: the configured ``classic_buckets``."""
    out = []
    for names, kind, series in families(points):
        first = series[0]
        about = f"{first.name} ({first.unit})" if first.unit else first.name
        family = [string(1, names.family), string(2, about), uint(3, _TYPES[Kind(kind)])]
        for pairs, point in distinct(series, kind == Kind.HISTOGRAM):
            labels = b"".join(message(1, string(1, label) + string(2, value)) for label, value in pairs)
            family.append(message(4, labels + _value(point, max_buckets, classic or {})))
        encoded = b"".join(family)
        out.append(varint(len(encoded)) + encoded)
    return b"".join(out)


def _value(point: Point, max_buckets: int, classic: Mapping[str, tuple[float, ...]]) -> bytes:
    if point.kind == Kind.HISTOGRAM:
        histogram = point.histogram or HistogramData(count=0, sum=0.0, min=math.inf, max=-math.inf)
        return message(7, _histogram(histogram, classic_bounds(point.name, point.unit, classic), max_buckets))
    value = float(point.value or 0)
    return message(3 if point.kind == Kind.COUNTER else 2, double(1, value))


def _histogram(histogram: HistogramData, bounds: tuple[float, ...], max_buckets: int) -> bytes:
    fields = [uint(1, histogram.count), double(2, float(histogram.sum))]
    for bound, count in zip(bounds, cumulative_counts(histogram, bounds), strict=True):  # the text format's
        fields.append(message(3, uint(1, count) + double(2, bound)))
    found = native(histogram, max_buckets)
    if found is not None:
        fields += [sint(5, found.schema), double(6, ZERO_THRESHOLD), uint(7, found.zero_count)]
        fields += [message(9, sint(1, offset) + uint(2, length)) for offset, length in found.negative_spans]
        fields.append(packed_sint(10, found.negative_deltas))
        fields += [message(12, sint(1, offset) + uint(2, length)) for offset, length in found.positive_spans]
        fields.append(packed_sint(13, found.positive_deltas))
    return b"".join(fields)

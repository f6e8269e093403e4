"""Native histograms: our exponential buckets in Prometheus' sparse bucket layout.

The layouts are the same family: Prometheus' schema ``s`` is OpenTelemetry's scale
``s`` (each power of two split into ``2**s`` buckets of ratio ``2**(2**-s)``); only the
index is shifted by one, because a native bucket ``j`` covers ``(base**(j-1), base**j]``
where ours, ``i``, covers ``(base**i, base**(i+1)]``. So the mapping is exact:
`native` moves no value from one bucket to another.

Prometheus takes schemas -4 to 8. Ours is 6 (1.09 % wide buckets); a histogram at a
finer scale is coarsened to 8, one at a coarser scale than -4 is not served natively.
Like client_golang's ``NativeHistogramMaxBucketNumber``, a histogram with more
populated buckets than *max_buckets* (when not 0) is coarsened one schema at a time
until it fits (each step halves the resolution: at schema 5 buckets are 2.19 % wide,
at 4 4.4 %). As in client_golang there is no limit by default: what Prometheus shows
stays at our resolution; a server with ``native_histogram_bucket_limit`` wants one.

The zero bucket has client_golang's default width, 2**-128: wide enough that
Prometheus tells a native histogram from a classic one even before anything is
recorded (releases before 2.46 look at the zero threshold, not at the "no-op span"
later ones take), and narrow enough that no realistic value falls in it but zeros.
Buckets below it are counted in it.
"""

from __future__ import annotations

from typing import NamedTuple

from ..._histogram import HistogramData

__all__ = ["MAX_SCHEMA", "MIN_SCHEMA", "ZERO_THRESHOLD", "NativeHistogram", "native"]

MIN_SCHEMA, MAX_SCHEMA = -4, 8
ZERO_THRESHOLD = 2.0**-128


class NativeHistogram(NamedTuple):
    """One histogram in the fields of Prometheus' ``Histogram`` message (native part)."""

    schema: int
    zero_count: int
    positive_spans: list[tuple[int, int]]  # (offset, length): offset from the previous span's end
    positive_deltas: list[int]  # each bucket's count minus the previous bucket's
    negative_spans: list[tuple[int, int]]
    negative_deltas: list[int]


def native(histogram: HistogramData, max_buckets: int = 0) -> NativeHistogram | None:
    """*histogram* as a native histogram, or None if its scale is coarser than schema -4;
    at most *max_buckets* populated buckets (both signs together) unless it is 0."""
    if histogram.scale < MIN_SCHEMA:
        return None
    scale = min(histogram.scale, MAX_SCHEMA)
    while max_buckets and scale > MIN_SCHEMA and _populated(histogram, scale) > max_buckets:
        scale -= 1  # counting the buckets of a coarser scale is cheap; downscale() once, below
    coarse = histogram.downscale(scale)
    zero_count = coarse.zero_count
    # A native bucket j is at most 2**-128 when j <= -128 * 2**scale: it belongs to the zero bucket.
    limit = -128 << scale if scale >= 0 else -128 >> -scale
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    for ours, target in ((coarse.positive, positive), (coarse.negative, negative)):
        for index, count in ours.items():
            if index + 1 <= limit:
                zero_count += count
            elif count:
                target[index + 1] = count
    positive_spans, positive_deltas = _spans(positive)
    negative_spans, negative_deltas = _spans(negative)
    if not positive_spans and not negative_spans:
        positive_spans = [(0, 0)]  # the "no-op span": native, though nothing is in a bucket yet
    return NativeHistogram(scale, zero_count, positive_spans, positive_deltas, negative_spans, negative_deltas)


def _populated(histogram: HistogramData, scale: int) -> int:
    """How many buckets *histogram* would populate at *scale* (<= its own)."""
    shift = histogram.scale - scale
    if shift == 0:
        return len(histogram.positive) + len(histogram.negative)
    return len({i >> shift for i in histogram.positive}) + len({i >> shift for i in histogram.negative})


def _spans(buckets: dict[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Runs of consecutive indices as (offset, length) spans, and the counts as deltas."""
    spans: list[tuple[int, int]] = []
    deltas: list[int] = []
    previous_count = 0
    end = 0  # the index after the last span
    for index in sorted(buckets):
        if spans and index == end:
            offset, length = spans[-1]
            spans[-1] = (offset, length + 1)
        else:
            spans.append((index - end if spans else index, 1))
        end = index + 1
        count = buckets[index]
        deltas.append(count - previous_count)
        previous_count = count
    return spans, deltas

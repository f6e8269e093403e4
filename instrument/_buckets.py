"""Histogram bucket maths shared by the exporters and the report.

A leaf module (standard library only), so that every layer can use it: `_histogram`
for its quantiles, the Prometheus, OTLP and StatsD exporters, the report.

- `middle`: the one value that stands for all the values of a bucket (quantiles,
  StatsD's stand-in values, OTLP's explicit buckets at negative scales, the report's
  labels).
- `boundary_exponents`: the fixed explicit boundaries, powers of two chosen by unit,
  of a histogram shown with ``le`` buckets (Prometheus) or explicit buckets (OTLP).
  Powers of two are bucket boundaries of the exponential histograms at every scale
  >= 0, so `cumulative_counts` at those boundaries are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Protocol

__all__ = ["BOUNDARY_EXPONENTS", "DEFAULT_BOUNDARY_EXPONENTS", "boundary_exponents", "cumulative_counts", "middle"]

# Boundaries 2**k for k in the range of a histogram's unit: about 8 us to 64 s for
# durations in any unit, 64 B to 512 MiB for sizes.
BOUNDARY_EXPONENTS: dict[str, range] = {
    "s": range(-17, 7),  # 7.6 us .. 64 s
    "ms": range(-7, 17),  # 7.8 us .. 65.5 s
    "us": range(3, 27),  # 8 us .. 67 s
    "ns": range(13, 37),  # 8.2 us .. 68.7 s
    "By": range(6, 30),  # 64 B .. 512 MiB
}
DEFAULT_BOUNDARY_EXPONENTS = range(-8, 16)  # 0.0039 .. 32768


class Buckets(Protocol):
    """What `cumulative_counts` reads of a histogram (`HistogramData` has it). A protocol,
    so that this module imports nothing of instrument's and `_histogram` can use it."""

    @property
    def scale(self) -> int: ...

    @property
    def zero_count(self) -> int: ...

    @property
    def positive(self) -> Mapping[int, int]: ...

    @property
    def negative(self) -> Mapping[int, int]: ...


def middle(lower: float, upper: float) -> float:
    """The geometric middle of the bucket ``(lower, upper]``, negative for a negative bucket.

    Within half a bucket's relative width of every value in it (0.55 % at scale 6), which
    is what keeps quantiles read from the buckets within 1 %. The zero bucket, ``(0, 0)``
    as `HistogramData.buckets` gives it, has middle 0.
    """
    # Two square roots, not the root of the product: lower * upper overflows to
    # infinity from about 1.3e154 (and underflows to 0 below 1e-154).
    return math.copysign(math.sqrt(abs(lower)) * math.sqrt(abs(upper)), upper)


def boundary_exponents(unit: str) -> range:
    """The exponents k of the boundaries 2**k of a histogram in *unit*."""
    return BOUNDARY_EXPONENTS.get(unit, DEFAULT_BOUNDARY_EXPONENTS)


def cumulative_counts(histogram: Buckets, exponents: Iterable[int]) -> list[int]:
    """For each 2**k (k ascending), the number of recorded values <= 2**k.

    Exact: at scale >= 0, 2**k is the upper bound of positive bucket ``k * 2**scale - 1``
    (buckets are ``(base**i, base**(i+1)]``), so a bucket is wholly below or above it.
    Zeros and negative values are below every boundary.
    """
    if histogram.scale < 0:
        raise ValueError(f"histograms of scale {histogram.scale} have no bucket boundary at each power of two")
    running = histogram.zero_count + sum(histogram.negative.values())
    positive = sorted(histogram.positive.items())
    counts = []
    position = 0
    for exponent in exponents:
        limit = exponent << histogram.scale  # bucket i is <= 2**k when i + 1 <= k * 2**scale
        while position < len(positive) and positive[position][0] < limit:
            running += positive[position][1]
            position += 1
        counts.append(running)
    return counts

"""Histogram bucket maths shared by the exporters and the report.

A leaf module (standard library only), so that every layer can use it: `_histogram`
for its quantiles, the Prometheus, OTLP and StatsD exporters, the report.

- `middle`: the one value that stands for all the values of a bucket (quantiles,
  StatsD's stand-in values, OTLP's explicit buckets at negative scales, the report's
  labels).
- `classic_bounds`: the explicit boundaries of a histogram shown with classic buckets
  (Prometheus' ``le``, OTLP's explicit buckets): by default powers of sqrt(2) over a
  range chosen by unit, or the boundaries configured for its metric or its unit
  (``classic_buckets``); `cumulative_counts` counts the values at or below each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["CLASSIC_RANGES", "DEFAULT_CLASSIC_BOUNDS", "OTHER_UNITS_RANGE", "classic_bounds", "cumulative_counts",
           "middle"]

# Classic boundaries are the powers of 2**(1/2) (bucket schema 1) from 2**low to 2**high,
# a range per unit: durations from about 61 us to 64 s in any unit, sizes 64 B to 512 MiB.
# Factor sqrt(2) is the accuracy chosen for the default: a quantile that Prometheus
# interpolates linearly within a bucket is off by at most 41 % of the value (a bucket's
# whole width; 19 % at factor 2**(1/4), 100 % at factor 2), with 41 series per label set
# for durations (prometheus_client's default has 15, and errors up to 150 %). Powers of
# sqrt(2) are bucket boundaries of the exponential histograms at every scale >= 1, so
# the counts below them are exact.
CLASSIC_RANGES: dict[str, tuple[int, int]] = {
    "s": (-14, 6),  # 61 us .. 64 s
    "ms": (-4, 16),  # 62.5 us .. 65.5 s
    "us": (6, 26),  # 64 us .. 67 s
    "ns": (16, 36),  # 65.5 us .. 68.7 s
    "By": (6, 29),  # 64 B .. 512 MiB
}
OTHER_UNITS_RANGE = (-8, 15)  # 0.0039 .. 32768


def _powers_of_root_two(low: int, high: int) -> tuple[float, ...]:
    return tuple(2.0 ** (n / 2) for n in range(2 * low, 2 * high + 1))


DEFAULT_CLASSIC_BOUNDS: dict[str, tuple[float, ...]] = {
    unit: _powers_of_root_two(*octaves) for unit, octaves in CLASSIC_RANGES.items()
}
_OTHER_UNITS_BOUNDS = _powers_of_root_two(*OTHER_UNITS_RANGE)


def classic_bounds(name: str, unit: str, configured: Mapping[str, tuple[float, ...]]) -> tuple[float, ...]:
    """The classic boundaries of metric *name* in *unit*: *configured*'s for the name, else
    for ``unit:<unit>``, else the default for the unit."""
    found = configured.get(name) or configured.get("unit:" + unit)
    return found or DEFAULT_CLASSIC_BOUNDS.get(unit, _OTHER_UNITS_BOUNDS)


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

    @property
    def min(self) -> float: ...

    @property
    def max(self) -> float: ...


def middle(lower: float, upper: float) -> float:
    """The geometric middle of the bucket ``(lower, upper]``, negative for a negative bucket.

    Within half a bucket's relative width of every value in it (0.55 % at scale 6), which
    is what keeps quantiles read from the buckets within 1 %. The zero bucket, ``(0, 0)``
    as `HistogramData.buckets` gives it, has middle 0.
    """
    # Two square roots, not the root of the product: lower * upper overflows to
    # infinity from about 1.3e154 (and underflows to 0 below 1e-154).
    return math.copysign(math.sqrt(abs(lower)) * math.sqrt(abs(upper)), upper)


def cumulative_counts(histogram: Buckets, bounds: Sequence[float]) -> list[int]:
    """For each bound (ascending), the number of recorded values <= it.

    Each bucket counts below a bound when its geometric middle (kept within the
    histogram's min and max) is at or below it. At a bound that is a bucket boundary
    (powers of sqrt(2) at scales >= 1, of two at scales >= 0) that is exact: the whole
    bucket is on one side. At another bound (a configured 0.25 within a bucket) a value
    is counted on the wrong side only when within half a bucket (0.55 % at scale 6) of it.
    """
    base = 2.0 ** (2.0**-histogram.scale)
    low, high = histogram.min, histogram.max
    # base**(i + 0.5) is `middle` of bucket i, in one power (this runs at every scrape).
    middles = [(min(max(-(base ** (i + 0.5)), low), high), n) for i, n in histogram.negative.items()]
    middles += [(min(max(base ** (i + 0.5), low), high), n) for i, n in histogram.positive.items()]
    if histogram.zero_count:
        middles.append((0.0, histogram.zero_count))
    middles.sort()
    counts = []
    running = position = 0
    for bound in bounds:
        while position < len(middles) and middles[position][0] <= bound:
            running += middles[position][1]
            position += 1
        counts.append(running)
    return counts

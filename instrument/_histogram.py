"""Base-2 exponential histograms, the same bucket layout as OpenTelemetry's.

Bucket ``i`` holds values in ``(base**i, base**(i+1)]`` with ``base = 2**(2**-SCALE)``.
At scale 6 a bucket spans 1.09 %, so the geometric middle of a bucket is within
0.55 % of any value in it: quantiles read from the buckets are within 1 % relative
error. Histograms of the same scale merge by adding bucket counts, which is what
makes per-interval, per-process and per-worker aggregates combinable.

Binning runs in C: ``map`` over ``math.log2`` and a `Counter` update, no Python-level
loop per value (values <= 0, which `log` rejects, take a per-value path). Chunks
whose values repeat, as the nanosecond timings of a fast call do, are counted by
value first and each distinct value is binned once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from math import ceil, log2
from operator import add, mul
from typing import Any

from ._buckets import middle

SCALE = 6
BASE = 2.0 ** (2.0**-SCALE)
_PER_OCTAVE = float(2**SCALE)  # log_base(v) == log2(v) * 2**SCALE
_SAMPLE = 256  # values looked at (spread over the chunk) to tell whether it repeats enough to count first


class HistogramState:
    """Accumulates raw values of one series during one interval (collector thread only).

    Raw values divided by *divisor* are in the exported unit (1e9 for nanosecond timers).
    Count, sum, min and max are kept in raw units, exactly; buckets are computed in
    the exported unit so that they are OpenTelemetry buckets of that unit.
    """

    __slots__ = ("_shift", "count", "divisor", "max", "min", "negative", "positive", "sum", "zero_count")

    def __init__(self, divisor: float = 1.0) -> None:
        self.divisor = divisor
        self.count = 0
        self.sum: int | float = 0
        self.min: int | float = math.inf
        self.max: int | float = -math.inf
        self.zero_count = 0
        self.positive: Counter[int] = Counter()
        self.negative: Counter[int] = Counter()
        # index = ceil(log_base(v / divisor)) - 1 = ceil(log_base(v) - log_base(divisor) - 1)
        self._shift = -log2(divisor) * _PER_OCTAVE - 1.0

    def add_many(self, values: list[Any]) -> None:
        self.count += len(values)
        self.sum += sum(values)
        low = min(values)
        high = max(values)
        if low < self.min:
            self.min = low
        if high > self.max:
            self.max = high
        if low > 0:
            if len(values) >= _SAMPLE * 4 and _repeats(values):
                # Timings of a fast call repeat (a 400 ns call takes a few hundred distinct
                # ns values): count each distinct value, then bin it once. Same formula.
                positive = self.positive
                shift = self._shift
                for value, n in Counter(values).items():
                    positive[ceil(log2(value) * _PER_OCTAVE + shift)] += n
                return
            logs = map(mul, map(log2, values), repeat(_PER_OCTAVE))
            self.positive.update(map(ceil, map(add, logs, repeat(self._shift))))
            return
        for value in values:
            if value > 0:
                self.positive[ceil(log2(value) * _PER_OCTAVE + self._shift)] += 1
            elif value < 0:
                self.negative[ceil(log2(-value) * _PER_OCTAVE + self._shift)] += 1
            else:
                self.zero_count += 1

    def freeze(self) -> HistogramData:
        d = self.divisor
        return HistogramData(
            count=self.count,
            sum=self.sum / d,
            min=self.min / d,
            max=self.max / d,
            scale=SCALE,
            zero_count=self.zero_count,
            positive=dict(self.positive),
            negative=dict(self.negative),
        )


def _repeats(values: list[Any]) -> bool:
    """Whether at most about a quarter of *values* are distinct, judged from a sample.

    Counting by value first pays below that. A sample of s values drawn from d equally
    common ones holds d * (1 - exp(-s / d)) distinct values on average: fewer than
    that for d = len(values) / 4 means fewer distinct values than the limit.
    """
    sample = values[:: len(values) // _SAMPLE]
    limit = len(values) / 4
    return len(set(sample)) < limit * -math.expm1(-len(sample) / limit)


class HistogramData:
    """An exported histogram: count, sum, min, max and exponential buckets (in the unit).

    ``positive`` and ``negative`` map a bucket index to its count; bucket ``i`` covers
    ``(base**i, base**(i+1)]`` (for ``negative``, of the absolute value).
    """

    __slots__ = ("count", "max", "min", "negative", "positive", "scale", "sum", "zero_count")

    def __init__(
        self,
        *,
        count: int,
        sum: float,
        min: float,
        max: float,
        scale: int = SCALE,
        zero_count: int = 0,
        positive: Mapping[int, int] | None = None,
        negative: Mapping[int, int] | None = None,
    ) -> None:
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.scale = scale
        self.zero_count = zero_count
        self.positive = dict(positive or {})
        self.negative = dict(negative or {})

    def __repr__(self) -> str:
        return (
            f"HistogramData(count={self.count}, sum={self.sum!r}, min={self.min!r}, "
            f"max={self.max!r}, p50={self.quantile(0.5)!r}, p99={self.quantile(0.99)!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HistogramData):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    @property
    def base(self) -> float:
        return float(2.0 ** (2.0**-self.scale))

    def merge(self, other: HistogramData) -> HistogramData:
        """The histogram of both sets of values, at the coarser of the two scales."""
        return _merge([self, other])

    def downscale(self, scale: int) -> HistogramData:
        """The same values in coarser buckets: each bucket at *scale* joins
        ``2**(self.scale - scale)`` of ours (exact, since bucket bounds nest)."""
        if scale > self.scale:
            raise ValueError(f"cannot refine a histogram from scale {self.scale} to {scale}")
        if scale == self.scale:
            return self
        shift = self.scale - scale
        positive: Counter[int] = Counter()
        for index, n in self.positive.items():
            positive[index >> shift] += n
        negative: Counter[int] = Counter()
        for index, n in self.negative.items():
            negative[index >> shift] += n
        return HistogramData(
            count=self.count, sum=self.sum, min=self.min, max=self.max, scale=scale,
            zero_count=self.zero_count, positive=positive, negative=negative,
        )

    def buckets(self) -> Iterator[tuple[float, float, int]]:
        """``(lower, upper, count)`` for each non-empty bucket, in ascending value order."""
        base = self.base
        for index in sorted(self.negative, reverse=True):
            yield -(base ** (index + 1)), -(base**index), self.negative[index]
        if self.zero_count:
            yield 0.0, 0.0, self.zero_count
        for index in sorted(self.positive):
            yield base**index, base ** (index + 1), self.positive[index]

    def quantile(self, q: float) -> float:
        """The *q*-quantile (nearest rank), within 1 % of the true value; NaN if empty."""
        if not 0 <= q <= 1:
            raise ValueError(f"quantile must be within [0, 1], got {q!r}")
        if self.count == 0:
            return math.nan
        rank = max(1, ceil(q * self.count))
        if rank >= self.count:
            return float(self.max)
        if rank == 1:
            return float(self.min)
        seen = 0
        for lower, upper, n in self.buckets():
            seen += n
            if seen >= rank:
                return float(min(max(middle(lower, upper), self.min), self.max))
        return float(self.max)  # counts and buckets disagree only if hand-built

    def dense(self, side: str = "positive") -> tuple[int, list[int]]:
        """``(offset, counts)``: OpenTelemetry's dense form of one side's buckets."""
        sparse = self.positive if side == "positive" else self.negative
        if not sparse:
            return 0, []
        offset = min(sparse)
        counts = [0] * (max(sparse) - offset + 1)
        for index, n in sparse.items():
            counts[index - offset] = n
        return offset, counts

    def as_dict(self) -> dict[str, Any]:
        positive_offset, positive_counts = self.dense("positive")
        negative_offset, negative_counts = self.dense("negative")
        return {
            "scale": self.scale,
            "zero_count": self.zero_count,
            "positive": {"offset": positive_offset, "counts": positive_counts},
            "negative": {"offset": negative_offset, "counts": negative_counts},
        }


def merge_all(histograms: Iterable[HistogramData]) -> HistogramData | None:
    """The histogram of all their values (at the coarsest scale among them), or None."""
    found = list(histograms)
    if len(found) <= 1:
        return found[0] if found else None
    return _merge(found)


def _merge(found: list[HistogramData]) -> HistogramData:
    """One pass with one set of counters, where merging pairwise would copy the buckets
    again for every histogram."""
    scale = min(h.scale for h in found)
    positive: Counter[int] = Counter()
    negative: Counter[int] = Counter()
    count = zero_count = 0
    total: int | float = 0
    low, high = math.inf, -math.inf
    for histogram in found:
        histogram = histogram.downscale(scale)
        positive.update(histogram.positive)
        negative.update(histogram.negative)
        count += histogram.count
        zero_count += histogram.zero_count
        total += histogram.sum
        low = min(low, histogram.min)
        high = max(high, histogram.max)
    return HistogramData(
        count=count, sum=total, min=low, max=high, scale=scale,
        zero_count=zero_count, positive=positive, negative=negative,
    )

"""The bins a distribution is drawn with: a bar per distinct value when there are only a
few, else logarithmic buckets coarse enough to be read.

A histogram's buckets are 1.09 % wide: a constant (``returned_rows`` always 1) fills one
of them, whose lower bound, 0.9892, says nothing. A handful of filled buckets is shown
as that many labelled bars: the exact minimum and maximum for the first and last, the
whole number inside for whole-number data, else the bucket's middle. More are merged
into coarser buckets (exactly: bucket bounds nest) until at most `MAX_BARS` span the
range from the smallest to the largest value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .._buckets import middle
from .._format import format_value
from .._histogram import HistogramData
from .._model import MIN_SCALE

MAX_BARS = 48  # buckets across a distribution's range
FEW = 8  # up to this many filled buckets are shown as one bar each


@dataclass
class Bins:
    """Either `categories` (a label and a count per bar) or `buckets` (``(lower, upper, count)`` on a
    log axis, values above zero only: `left_out` counts those at or below zero)."""

    categories: list[tuple[str, int]] = field(default_factory=list)
    buckets: list[tuple[float, float, int]] = field(default_factory=list)
    left_out: int = 0


def bins(histogram: HistogramData, unit: str) -> Bins:
    filled = list(histogram.buckets())
    if len(filled) <= FEW:
        return Bins(categories=[(_label(histogram, i, filled, unit), n) for i, (_, _, n) in enumerate(filled)])
    h = histogram
    while h.positive and max(h.positive) - min(h.positive) + 1 > MAX_BARS and h.scale > MIN_SCALE:
        h = h.downscale(h.scale - 1)
    left_out = h.zero_count + sum(h.negative.values())
    if not h.positive:
        return Bins(left_out=left_out)
    base = h.base
    low, high = min(h.positive), max(h.positive)
    buckets = [(base**i, base ** (i + 1), h.positive.get(i, 0)) for i in range(low, high + 1)]
    return Bins(buckets=buckets, left_out=left_out)


def _label(histogram: HistogramData, index: int, filled: list[tuple[float, float, int]], unit: str) -> str:
    """What the *index*-th filled bucket holds, as exactly as the histogram knows it."""
    lower, upper, _ = filled[index]
    if index == 0:
        return format_value(histogram.min, unit)
    if index == len(filled) - 1:
        return format_value(histogram.max, unit)
    if lower == upper == 0.0:
        return format_value(0, unit)
    whole = all(float(x).is_integer() for x in (histogram.min, histogram.max, histogram.sum))
    number = math.floor(upper)
    if whole and lower < number and number - 1 <= lower:  # the one whole number in (lower, upper]
        return format_value(number, unit)
    return format_value(middle(lower, upper), unit)

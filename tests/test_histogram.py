"""Exponential histograms: OpenTelemetry's bucket layout, quantiles within 1 %, merging."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instrument._histogram import BASE, SCALE, HistogramData, HistogramState, merge_all


def exact_quantile(values, q):
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def frozen(values, divisor=1.0):
    state = HistogramState(divisor)
    state.add_many(list(values))
    return state.freeze()


class TestBuckets:
    def test_bucket_i_holds_base_i_to_base_i_plus_1(self):
        """Each value lands in the bucket (base**i, base**(i+1)] (away from boundaries)."""
        rng = random.Random(1)
        for _ in range(2000):
            v = math.exp(rng.uniform(-20, 20))
            index = next(iter(frozen([v]).positive))
            assert BASE**index < v * (1 + 1e-12)
            assert v <= BASE ** (index + 1) * (1 + 1e-12)

    def test_scale_and_base(self):
        assert 6 == SCALE
        assert math.isclose(2 ** (1 / 64), BASE)

    def test_nanoseconds_bucketed_in_seconds(self):
        """Timer values are nanoseconds; buckets, sum, min and max come out in seconds."""
        h = frozen([1_000_000, 3_000_000], divisor=1e9)
        assert (2, 0.004, 0.001, 0.003) == (h.count, h.sum, h.min, h.max)
        assert frozen([0.001, 0.003]).positive == h.positive

    def test_counts_sum_min_max_are_exact(self):
        values = [5, 1, 9, 3]
        h = frozen(values)
        assert (4, 18, 1, 9) == (h.count, h.sum, h.min, h.max)
        assert 4 == sum(h.positive.values())

    @pytest.mark.parametrize("distinct", [40, 100_000], ids=["repeating", "spread"])
    def test_each_value_in_its_own_bucket_whether_or_not_values_repeat(self, distinct):
        """Nanosecond timings of a fast call repeat and are counted by value first; the buckets are the same."""
        rng = random.Random(distinct)
        values = [rng.randrange(300, 300 + distinct) for _ in range(20_000)]
        state = HistogramState(1e9)
        state.add_many(values)
        shift = -math.log2(1e9) * 64 - 1.0  # index = ceil(log_base(v / 1e9)) - 1
        expected = Counter(math.ceil(math.log2(v) * 64 + shift) for v in values)
        assert expected == state.positive
        assert (len(values), sum(values), min(values), max(values)) == (state.count, state.sum, state.min, state.max)

    def test_zero_and_negative(self):
        h = frozen([-4.0, -0.5, 0, 0.0, 2.0])
        assert 2 == h.zero_count
        assert 2 == sum(h.negative.values())
        assert 1 == sum(h.positive.values())
        assert [-4.0, -0.5, 0.0, 2.0] == pytest.approx(
            [h.quantile(q) for q in (0.2, 0.4, 0.6, 1.0)], rel=0.011
        )


class TestQuantiles:
    @pytest.mark.parametrize("seed", range(5))
    @pytest.mark.parametrize("q", [0.5, 0.9, 0.99, 0.999])
    def test_within_one_percent(self, seed, q):
        """On skewed latency-like data every quantile is within 1 % of the exact one."""
        rng = random.Random(seed)
        values = [int(rng.lognormvariate(12, 1.5)) + 1 for _ in range(20_000)]
        h = frozen(values, divisor=1e9)
        exact = exact_quantile(values, q) / 1e9
        assert abs(h.quantile(q) - exact) <= 0.01 * exact

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.floats(min_value=1e-9, max_value=1e9), min_size=1, max_size=300), st.floats(0, 1))
    def test_within_one_percent_property(self, values, q):
        h = frozen(values)
        exact = exact_quantile(values, q)
        assert abs(h.quantile(q) - exact) <= 0.01 * exact

    def test_extremes_are_exact(self):
        h = frozen([3, 7, 11])
        assert 3 == h.quantile(0)
        assert 11 == h.quantile(1)

    def test_empty_and_bad_q(self):
        assert math.isnan(HistogramData(count=0, sum=0, min=math.inf, max=-math.inf).quantile(0.5))
        with pytest.raises(ValueError, match="within"):
            frozen([1]).quantile(1.5)


class TestMerge:
    def test_merge_equals_histogram_of_all_values(self):
        """Merging per-interval (or per-process) histograms loses nothing."""
        rng = random.Random(7)
        a = [rng.expovariate(1) for _ in range(1000)]
        b = [rng.expovariate(3) for _ in range(500)]
        merged = frozen(a).merge(frozen(b))
        whole = frozen(a + b)
        assert whole.positive == merged.positive
        assert whole.count == merged.count
        assert math.isclose(whole.sum, merged.sum)

    def test_dense_form(self):
        h = HistogramData(count=3, sum=0, min=0, max=0, positive={4: 1, 7: 2})
        assert (4, [1, 0, 0, 2]) == h.dense("positive")
        assert {"offset": 4, "counts": [1, 0, 0, 2]} == h.as_dict()["positive"]

    def test_downscale_puts_each_value_where_the_coarser_scale_would(self):
        rng = random.Random(11)
        values = [rng.lognormvariate(0, 3) for _ in range(2000)]
        coarse = frozen(values).downscale(3)
        expected = Counter(math.ceil(math.log2(v) * 2**3) - 1 for v in values)
        assert 3 == coarse.scale
        assert expected == coarse.positive
        assert len(values) == coarse.count

    def test_merge_all_equals_merging_one_by_one(self):
        rng = random.Random(5)
        parts = [frozen([rng.lognormvariate(0, 2) for _ in range(300)]) for _ in range(6)]
        parts[2] = parts[2].downscale(4)
        one_by_one = parts[0]
        for part in parts[1:]:
            one_by_one = one_by_one.merge(part)
        merged = merge_all(parts)
        assert (one_by_one.count, one_by_one.min, one_by_one.max, one_by_one.scale) == (
            merged.count, merged.min, merged.max, merged.scale)
        assert (one_by_one.positive, one_by_one.zero_count) == (merged.positive, merged.zero_count)
        assert math.isclose(one_by_one.sum, merged.sum)
        assert merge_all([]) is None

    def test_downscale_cannot_refine(self):
        with pytest.raises(ValueError, match="refine"):
            frozen([1]).downscale(SCALE + 1)

    def test_histograms_of_different_scales_merge_at_the_coarser_one(self):
        """As OpenTelemetry does: a histogram from another producer still merges."""
        a, b = [0.5, 1.5, 3.0], [2.0, 7.0]
        other = frozen(b).downscale(2)
        merged = frozen(a).merge(other)
        assert 2 == merged.scale
        assert frozen(a + b).downscale(2) == merged

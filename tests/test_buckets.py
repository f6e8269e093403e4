"""Bucket maths shared by the exporters and the report: middles, boundaries, cumulative counts."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from instrument._buckets import DEFAULT_CLASSIC_BOUNDS, classic_bounds, cumulative_counts, middle
from instrument._histogram import HistogramData, HistogramState


def frozen(values: list[float]) -> HistogramData:
    state = HistogramState()
    state.add_many(values)
    return state.freeze()


class TestMiddle:
    def test_geometric_middle_of_a_positive_bucket(self):
        """A positive bucket's middle is the geometric mean of its bounds."""
        assert math.isclose(2.0, middle(1.0, 4.0))

    def test_negative_bucket_has_a_negative_middle(self):
        """A bucket of negative values, bounds given lower first, has a negative middle."""
        assert math.isclose(-2.0, middle(-4.0, -1.0))

    def test_zero_bucket_has_middle_zero(self):
        """The zero bucket, (0, 0), stands for 0."""
        assert 0.0 == middle(0.0, 0.0)

    def test_no_overflow_at_the_ends_of_float_range(self):
        """Bounds whose product is beyond float range still give the middle (a quantile of 1e200 values)."""
        assert math.isclose(2e200, middle(1e200, 4e200))
        assert math.isclose(-2e-200, middle(-4e-200, -1e-200))
        assert math.isclose(2e200, frozen([1e200, 2e200, 2e200, 2e200, 4e200]).quantile(0.5), rel_tol=0.01)

    @given(st.floats(min_value=1e-300, max_value=1e300))
    def test_middle_of_a_values_bucket_is_within_half_a_bucket(self, value):
        """The middle of the bucket a value lands in is within 0.55 % of it (scale 6)."""
        ((lower, upper, _),) = frozen([value]).buckets()
        assert abs(middle(lower, upper) - value) <= 0.0055 * value


class TestClassicBounds:
    def test_durations_span_about_61_us_to_64_s_in_every_unit(self):
        """Whatever the time unit, the default boundaries cover about the same durations."""
        for unit, per_second in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
            bounds = classic_bounds("any", unit, {})
            assert 6e-5 < bounds[0] / per_second < 6.6e-5
            assert 64 <= bounds[-1] / per_second < 70

    def test_defaults_are_powers_of_root_two(self):
        """Consecutive default boundaries differ by a factor sqrt(2), every other one a power of two."""
        bounds = classic_bounds("any", "s", {})
        assert (41, 2.0**-14, 2.0**6) == (len(bounds), bounds[0], bounds[-1])
        assert all(math.isclose(b / a, math.sqrt(2)) for a, b in itertools.pairwise(bounds))

    def test_other_units_get_the_default_range(self):
        """A unit without its own range gets the default one."""
        assert (2.0**-8, 2.0**15) == (classic_bounds("x", "{row}", {})[0], classic_bounds("x", "{row}", {})[-1])
        assert DEFAULT_CLASSIC_BOUNDS["By"] == classic_bounds("x", "By", {})

    def test_configured_per_metric_then_per_unit(self):
        """A metric's own boundaries win over its unit's, which win over the default."""
        configured = {"db.wait": (0.1, 1.0), "unit:s": (0.5, 5.0)}
        assert (0.1, 1.0) == classic_bounds("db.wait", "s", configured)
        assert (0.5, 5.0) == classic_bounds("http.wait", "s", configured)
        assert DEFAULT_CLASSIC_BOUNDS["ms"] == classic_bounds("http.wait", "ms", configured)


class TestCumulativeCounts:
    def test_counts_are_exact_at_bucket_boundaries(self):
        """Values on a boundary count below it, values just above do not; zeros and negatives count everywhere."""
        histogram = frozen([-3.0, 0.0, 0.5, 1.0, 1.0000001, 2.0, 1000.0])
        assert [2, 4, 6, 6, 6] == cumulative_counts(histogram, [0.25, 1.0, 2.0, 4.0, 8.0])

    @given(st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=50))
    def test_counts_at_the_default_boundaries_are_exact(self, values):
        """At powers of sqrt(2) every count is the number of values at or below the bound
        (a value within 1e-9 of an irrational bound may fall on either side)."""
        bounds = classic_bounds("any", "s", {})
        counts = cumulative_counts(frozen(values), bounds)
        for bound, count in zip(bounds, counts, strict=True):
            assert sum(v <= bound * (1 - 1e-9) for v in values) <= count <= sum(v <= bound * (1 + 1e-9) for v in values)

    def test_other_bounds_count_each_bucket_where_its_middle_falls(self):
        """A bound inside a bucket: the values within half a bucket of it may count on either side."""
        values = [0.09, 0.0995, 0.1, 0.1004, 0.2]
        counts = cumulative_counts(frozen(values), [0.1])
        assert 2 <= counts[0] <= 4

    def test_coarser_scales_are_counted_by_middles(self):
        """At a negative scale buckets straddle the bounds: each counts where its middle falls."""
        coarse = frozen([0.3, 3.0, 30.0, 300.0]).downscale(-1)
        counts = cumulative_counts(coarse, [1.0, 100.0, 1000.0])
        assert [counts[-1], True] == [4, counts[0] <= counts[1] <= 4]

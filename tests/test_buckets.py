"""Bucket maths shared by the exporters and the report: middles, boundaries, cumulative counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrument._buckets import BOUNDARY_EXPONENTS, boundary_exponents, cumulative_counts, middle
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


class TestBoundaries:
    def test_durations_span_about_8_us_to_64_s_in_every_unit(self):
        """Whatever the time unit, the boundaries cover about the same durations."""
        for unit, per_second in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
            exponents = boundary_exponents(unit)
            assert 7e-6 < 2.0 ** exponents[0] / per_second < 9e-6
            assert 64 <= 2.0 ** exponents[-1] / per_second < 70

    def test_other_units_get_the_default_range(self):
        """A unit without its own range gets the default one."""
        assert range(-8, 16) == boundary_exponents("{row}")
        assert BOUNDARY_EXPONENTS["By"] == boundary_exponents("By")


class TestCumulativeCounts:
    def test_counts_are_exact_at_powers_of_two(self):
        """Values on a boundary count below it, values just above do not; zeros and negatives count everywhere."""
        histogram = frozen([-3.0, 0.0, 0.5, 1.0, 1.0000001, 2.0, 1000.0])
        assert [2, 4, 6, 6, 6] == cumulative_counts(histogram, [-2, 0, 1, 2, 3])

    def test_negative_scales_are_refused(self):
        """At a negative scale buckets straddle powers of two: no exact counts there."""
        with pytest.raises(ValueError, match="scale -1"):
            cumulative_counts(frozen([1.0]).downscale(-1), [0])

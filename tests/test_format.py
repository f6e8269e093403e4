"""Numbers with their units, as the tables and the plots show them."""

from __future__ import annotations

import math

import pytest

from instrument._format import display_scale, format_number, format_value, is_unitless


class TestFormatValue:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (0.00323, "3.23 ms"),
            (0.0003015, "302 us"),
            (8.45e-7, "845 ns"),
            (12.34, "12.3 s"),
            (0.0009997, "1 ms"),  # rounds up into the next unit, not "1000 us"
            (0, "0 s"),
            (-0.002, "-2 ms"),
        ],
    )
    def test_seconds_in_the_unit_that_reads_best(self, value, expected):
        """Durations keep three significant digits in s, ms, us or ns."""
        assert expected == format_value(value, "s")

    def test_other_time_units_are_converted(self):
        """A value recorded in ms or us is shown like one in seconds."""
        assert ["12 ms", "500 ns"] == [format_value(12, "ms"), format_value(0.5, "us")]

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(512, "512 B"), (1832, "1.79 KiB"), (1048575.9, "1 MiB"), (3.5 * 2**30, "3.5 GiB"), (0, "0 B")],
    )
    def test_bytes_in_binary_multiples(self, value, expected):
        """Bytes (unit By) are shown in B, KiB, MiB, GiB with three significant digits."""
        assert expected == format_value(value, "By")

    @pytest.mark.parametrize("unit", ["", "1", "{request}", "{row}"])
    def test_unitless_values_are_plain_numbers(self, unit):
        """Counts and ratios: whole numbers in full, others with three significant digits."""
        assert ["1832", "0.497", "12346", "1234567"] == [
            format_value(v, unit) for v in (1832, 0.4973, 12345.678, 1234567)
        ]

    def test_any_other_unit_follows_the_number(self):
        """A unit the tables do not scale is written after the number."""
        assert "21.5 Cel" == format_value(21.5, "Cel")

    def test_no_value_is_a_dash(self):
        """None (an empty cell) and NaN (an empty histogram's quantile) show as '-'."""
        assert ["-", "-"] == [format_value(None, "s"), format_value(math.nan, "By")]


class TestDisplayScale:
    def test_the_size_and_suffix_a_value_is_counted_in(self):
        """Axes count all their ticks in the unit of their largest value."""
        assert [(1e-3, " ms"), (1024.0, " KiB"), (1.0, ""), (1.0, " Cel")] == [
            display_scale(0.004, "s"), display_scale(3000, "By"), display_scale(5000, "{request}"),
            display_scale(20, "Cel"),
        ]


class TestNumbers:
    def test_whole_numbers_in_full(self):
        """Counter totals are exact, however large."""
        assert "123456789012" == format_number(123456789012)

    def test_annotations_and_one_are_unitless(self):
        """OpenTelemetry's {annotation} units and '1' count things; 'By' does not."""
        assert [True, True, True, False] == [is_unitless(u) for u in ("{request}", "1", "", "By")]

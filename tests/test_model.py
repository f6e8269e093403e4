"""The data model's one codec (`Point.as_dict`, `point_from_dict`) and its point kinds."""

from __future__ import annotations

import json
import math

import pytest

from instrument._histogram import HistogramData
from instrument._model import Kind, Point, point_from_dict


def through_json(point: Point, **options: bool) -> dict:
    return json.loads(json.dumps(point.as_dict(**options)))


class TestKind:
    def test_a_kind_is_its_string(self):
        """Kind members equal, hash and serialise as the strings the jsonl schema has."""
        assert "counter" == Kind.COUNTER
        assert {"gauge": 1}[Kind.GAUGE] == 1
        assert '"histogram"' == json.dumps(Kind.HISTOGRAM)
        assert "histogram" == f"{Kind.HISTOGRAM}"

    def test_read_points_have_kind_members(self):
        """A point read back has a Kind, whatever string it was made with."""
        point = Point("jobs", "counter", "1", {}, 1.0, 2.0, value=1)
        assert Kind.COUNTER is point_from_dict(through_json(point)).kind


class TestCodec:
    def test_an_additive_gauge_says_so_and_reads_back_additive(self):
        """A gauge that is one process's share of a total carries "additive": true; others carry no key."""
        share = Point("active", "gauge", "{request}", {}, 1.0, 2.0, value=2, additive=True)
        plain = Point("depth", "gauge", "1", {}, 1.0, 2.0, value=2)
        assert through_json(share)["additive"] is True
        assert "additive" not in through_json(plain)
        assert point_from_dict(through_json(share)).additive
        assert not point_from_dict(through_json(plain)).additive

    def test_additive_must_be_a_boolean(self):
        """Only true or false say whether a gauge is additive."""
        data = through_json(Point("active", "gauge", "", {}, 1.0, 2.0, value=2)) | {"additive": 1}
        with pytest.raises(ValueError, match="'additive' must be a JSON boolean"):
            point_from_dict(data)

    def test_quantiles_can_be_left_out(self):
        """Without quantiles the object holds what point_from_dict reads, and reads back the same."""
        histogram = HistogramData(count=2, sum=3.0, min=1.0, max=2.0, positive={-1: 1, 63: 1})
        point = Point("t", "histogram", "s", {}, 1.0, 2.0, histogram=histogram)
        data = through_json(point, quantiles=False)
        assert {"p50", "p90", "p99", "p999"} <= set(through_json(point))
        assert not {"p50", "p90", "p99", "p999"} & set(data)
        assert histogram == point_from_dict(data).histogram

    def test_strict_reading_refuses_what_no_float_holds(self):
        """A jsonl line with NaN, infinity, an integer beyond float range or buckets beyond it is refused."""
        histogram = HistogramData(count=2, sum=math.inf, min=1e308, max=1.5e308, positive={65479: 1, 65516: 1})
        data = through_json(Point("huge", "histogram", "", {}, 1.0, 2.0, histogram=histogram))
        with pytest.raises(ValueError, match="'sum' must be a finite number"):
            point_from_dict(data)
        with pytest.raises(ValueError, match="'buckets.positive' reaches beyond float range"):
            point_from_dict(data | {"sum": 1.0})
        counter = through_json(Point("many", "counter", "", {}, 1.0, 2.0, value=2 * 10**308))
        with pytest.raises(ValueError, match="'value' must be a finite number"):
            point_from_dict(counter)

    def test_lenient_reading_takes_every_number_the_pipeline_makes(self):
        """With strict false (points forwarded between our processes) overflowed sums, NaN, integers
        beyond float range and buckets near the largest float read back unchanged."""
        histogram = HistogramData(count=2, sum=math.inf, min=1e308, max=1.5e308, positive={65479: 1, 65516: 1})
        point = Point("huge", "histogram", "", {}, 1.0, 2.0, histogram=histogram)
        assert histogram == point_from_dict(through_json(point, quantiles=False), strict=False).histogram
        for value in (2 * 10**308, -math.inf):
            counter = Point("many", "counter", "", {}, 1.0, 2.0, value=value)
            assert value == point_from_dict(through_json(counter), strict=False).value
        gauge = Point("odd", "gauge", "", {}, 1.0, 2.0, value=math.nan)
        assert math.isnan(point_from_dict(through_json(gauge), strict=False).value)

    def test_lenient_reading_still_checks_the_shape(self):
        """strict false is about numbers only: a missing field or a wrong type is still refused."""
        data = through_json(Point("jobs", "counter", "", {}, 1.0, 2.0, value=1))
        with pytest.raises(ValueError, match="'value' must be a JSON number"):
            point_from_dict(data | {"value": "1"}, strict=False)
        with pytest.raises(ValueError, match="'start_time' must be a finite number"):
            point_from_dict(data | {"start_time": math.inf}, strict=False)

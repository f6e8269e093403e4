"""count(), record(), gauge() and timer(): what they record and what they reject."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

import instrument
from instrument.testing import capture


class TestCount:
    def test_sums_increments_per_tag_set(self):
        with capture() as captured:
            instrument.count("record.count")
            instrument.count("record.count", 4)
            instrument.count("record.count", 2, tags={"reason": "nsf"})
            instrument.count("record.count", 1, {"reason": "nsf"})
            instrument.count("record.count", 0.5, tags={"reason": "float"})
        assert 5 == captured.value("record.count")
        assert 3 == captured.value("record.count", {"reason": "nsf"})
        assert 0.5 == captured.value("record.count", {"reason": "float"})

    def test_tag_order_does_not_split_series(self):
        with capture() as captured:
            instrument.count("record.count.order", tags={"a": 1, "b": 2})
            instrument.count("record.count.order", tags={"b": 2, "a": 1})
        assert 2 == captured.value("record.count.order", {"a": 1, "b": 2})

    @pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf])
    def test_rejects_negative_and_non_finite(self, value):
        """A counter only goes up: the call itself raises ValueError naming the metric."""
        with pytest.raises(ValueError, match=r"count\('record.count.bad'\) increments must be finite and >= 0"):
            instrument.count("record.count.bad", value)

    @pytest.mark.parametrize("value", ["1", None, True, [1]])
    def test_rejects_non_numbers(self, value):
        with pytest.raises(TypeError, match="needs an int or float increment"):
            instrument.count("record.count.type", value)

    def test_bad_name_and_tags_raise_at_the_call(self):
        with pytest.raises(ValueError, match="invalid metric name"):
            instrument.count("no spaces")
        with pytest.raises(TypeError, match="tag 'k' of metric 'record.count.tags'"):
            instrument.count("record.count.tags", tags={"k": object()})
        with pytest.raises(TypeError, match="must be a mapping"):
            instrument.count("record.count.tags2", tags=[("k", "v")])

    def test_bad_tags_fail_every_time_not_only_the_first(self):
        """Rejected call sites are not cached: each bad call raises again."""
        for _ in range(3):
            with pytest.raises(TypeError):
                instrument.count("record.count.again", tags={"k": {}})


class TestRecord:
    def test_distribution(self):
        with capture() as captured:
            for v in (1, 2, 3, 4, 100.5):
                instrument.record("record.payload", v, unit="By")
        h = captured.histogram("record.payload")
        assert (5, 110.5, 1, 100.5) == (h.count, h.sum, h.min, h.max)
        assert "By" == captured.one("record.payload").unit

    def test_zero_and_negative_values(self):
        with capture() as captured:
            for v in (-2.0, 0, 0, 3):
                instrument.record("record.signed", v)
        h = captured.histogram("record.signed")
        assert (4, 1.0, -2.0, 3) == (h.count, h.sum, h.min, h.max)
        assert 2 == h.zero_count
        assert 1 == sum(h.negative.values())

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -(10**400)])
    def test_rejects_non_finite(self, value):
        """Values that are not finite floats (or ints beyond float range) are refused at the call."""
        with pytest.raises(ValueError, match=r"record\('record.nan'\) needs a finite value"):
            instrument.record("record.nan", value)

    def test_huge_values_never_wedge_exports(self, exported):
        """After a refused value, recording and exporting carry on normally."""
        with pytest.raises(ValueError):
            instrument.count("record.huge", 10**400)
        with pytest.raises(ValueError):
            instrument.gauge("record.huge.gauge", 10**400)
        instrument.record("record.huge.after", 1)
        assert instrument.flush(5.0)
        assert 1 == exported.points("record.huge.after")[0].histogram.count

    def test_unit_conflict(self):
        instrument.record("record.unit", 1, unit="By")
        with pytest.raises(ValueError, match="already declared with unit 'By', not 'ms'"):
            instrument.record("record.unit", 1, unit="ms")


class TestGauge:
    def test_last_value_wins(self):
        with capture() as captured:
            instrument.gauge("record.queue", 3)
            instrument.gauge("record.queue", 42)
            instrument.gauge("record.queue", 7.5, tags={"q": "b"})
        assert 42 == captured.value("record.queue")
        assert 7.5 == captured.value("record.queue", {"q": "b"})

    def test_gauge_alone_starts_the_collector(self, exported):
        """A process that only sets gauges still exports them on its interval."""
        instrument.configure(interval=0.05)
        instrument.gauge("record.only.gauge", 1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not exported.points("record.only.gauge"):
            time.sleep(0.02)
        assert 1 == exported.points("record.only.gauge")[0].value

    def test_rejects_non_numbers(self):
        with pytest.raises(TypeError, match=r"gauge\('record.gauge.bad'\) needs an int or float"):
            instrument.gauge("record.gauge.bad", "3")


class TestTimer:
    def test_with_block(self):
        with capture() as captured:
            with instrument.timer("record.timer", tags={"table": "loans"}):
                time.sleep(0.02)
        h = captured.histogram("record.timer", {"table": "loans"})
        assert 1 == h.count
        assert 0.02 <= h.sum < 0.5

    def test_with_block_error_propagates_and_is_tagged(self):
        with capture() as captured:
            with pytest.raises(ZeroDivisionError):
                with instrument.timer("record.timer.error"):
                    1 / 0  # noqa: B018
        assert 1 == captured.histogram("record.timer.error", {"error": "ZeroDivisionError"}).count

    def test_async_with(self):
        async def main():
            async with instrument.timer("record.timer.async"):
                await asyncio.sleep(0.02)

        with capture() as captured:
            asyncio.run(main())
        assert 0.02 <= captured.histogram("record.timer.async").sum

    def test_as_decorator(self):
        @instrument.timer("record.timer.decorator")
        def f(x):
            return x

        with capture() as captured:
            assert 3 == f(3)
        assert 1 == captured.histogram("record.timer.decorator").count
        assert "f" == f.__name__

    def test_reused_object_nests_and_shares_across_threads(self):
        """One timer object entered nested and from several threads keeps exact counts."""
        t = instrument.timer("record.timer.shared")

        def work():
            for _ in range(200):
                with t:
                    with t:
                        pass

        with capture() as captured:
            threads = [threading.Thread(target=work) for _ in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        assert 4 * 200 * 2 == captured.histogram("record.timer.shared").count

    def test_bad_name(self):
        with pytest.raises(ValueError, match="invalid metric name"):
            instrument.timer("1bad")


class TestKillSwitch:
    def test_disabled_records_nothing_and_decorators_return_the_function(self, exported):
        """With enabled=False decorators return the original function and calls record nothing."""
        instrument.configure(enabled=False)
        try:

            def f():
                return 1

            assert instrument.timed("record.disabled")(f) is f
            assert instrument.timer("record.disabled.timer")(f) is f
            instrument.count("record.disabled.count")
            with instrument.timer("record.disabled.timer"):
                pass
            instrument.flush()
        finally:
            instrument.configure(enabled=True)
        instrument.flush()
        assert [] == exported.points("record.disabled.count")
        assert [] == exported.points("record.disabled.timer")

    def test_switching_off_exports_what_was_recorded_before(self, exported):
        """configure(enabled=False) first hands what was recorded to the exporters."""
        instrument.count("record.before.off")
        instrument.configure(enabled=False)
        try:
            deadline = time.monotonic() + 5
            while not exported.points("record.before.off") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [1] == [p.value for p in exported.points("record.before.off")]
        finally:
            instrument.configure(enabled=True)

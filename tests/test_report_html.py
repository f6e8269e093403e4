"""``instrument report --html``: a summary, the table, and plots of every series, on one page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from instrument._histogram import HistogramState
from instrument._model import QUANTILES, Point
from instrument.report import Report, _glance, _svg, read
from instrument.report._distribution import MAX_BARS, bins
from instrument.report._html import render


def histogram(values):
    state = HistogramState()
    state.add_many(values)
    return state.freeze()


def report(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
    return subprocess.run(
        [sys.executable, "-m", "instrument", "report", *args], env=env, capture_output=True, text=True, timeout=60
    )


def write(path, points):
    path.write_text("".join(json.dumps(p.as_dict()) + "\n" for p in points))
    return path


class Page(HTMLParser):
    """The elements of a page: (tag, attributes) in order, and its text."""

    def __init__(self, html):
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag, **attrs):
        return sum(1 for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items()))


def service(intervals=30):
    """An HTTP service's series over *intervals* 10-second intervals: two routes, one of them failing
    sometimes, a database, a counter and a gauge."""
    points = []
    for i in range(intervals):
        span = (1000.0 + 10 * i, 1010.0 + 10 * i)
        routes = (("/fast", 0.002, 200), ("/slow/<int:id>", 0.2, 200), ("/slow/<int:id>", 1.5, 503))
        for route, latency, status in routes:
            tags = {"http.request.method": "GET", "http.route": route, "http.response.status_code": status,
                    "url.scheme": "http"}
            if status >= 500:
                tags["error.type"] = str(status)
            count = 1 if status >= 500 else 20
            points.append(Point("http.server.request.duration", "histogram", "s", tags, *span,
                                histogram=histogram([latency * (1 + k / 40) for k in range(count)])))
        points.append(Point("db.client.operation.duration", "histogram", "s",
                            {"db.system.name": "sqlite", "db.operation.name": "SELECT"}, *span,
                            histogram=histogram([0.0001] * 30)))
        points.append(Point("db.client.response.returned_rows", "histogram", "{row}", {"db.operation.name": "SELECT"},
                            *span, histogram=histogram([1] * 30)))
        points.append(Point("jobs.done", "counter", "{job}", {}, *span, value=5))
        points.append(Point("queue.depth", "gauge", "{job}", {}, *span, value=i % 4))
    return points


class TestPage:
    def test_a_summary_the_table_and_plots_for_each_series(self, tmp_path):
        """Every series has its row (linking to its plots) and its article: a histogram three plots, others one."""
        path = write(tmp_path / "m.jsonl", service())
        out = tmp_path / "report.html"
        result = report(str(path), "--html", str(out))
        assert 0 == result.returncode, result.stderr
        assert f"plots written to {out}" in result.stderr
        page = Page(out.read_text())
        series = read([str(path)]).series()
        histograms = sum(1 for p in series if p.histogram is not None)
        assert len(series) == page.count("article")
        assert [f"#s{n}" for n in range(1, len(series) + 1)] == [
            a["href"] for t, a in page.elements if t == "a" and a.get("href", "").startswith("#s")
        ][-len(series):]  # the table's links come after the summary's
        assert 3 * histograms + (len(series) - histograms) == page.count("svg")
        assert 3 == page.count("div", **{"class": "card"})
        assert "script" not in {t for t, _ in page.elements}

    def test_tag_values_are_escaped(self, tmp_path):
        """A tag value is text, never markup."""
        hostile = Point("jobs", "counter", "1", {"route": "<script>alert(1)</script>"}, 1.0, 2.0, value=1)
        out = tmp_path / "report.html"
        assert 0 == report(str(write(tmp_path / "m.jsonl", [hostile])), "--html", str(out)).returncode
        page = Page(out.read_text())
        assert "script" not in {t for t, _ in page.elements}
        assert "<script>alert(1)</script>" in page.text

    def test_an_unwritable_page_is_named(self, tmp_path):
        """The path that cannot be written is in the message; the exit status is 2."""
        path = write(tmp_path / "m.jsonl", service(2))
        result = report(str(path), "--html", str(tmp_path / "no" / "such" / "dir.html"))
        assert 2 == result.returncode
        assert "cannot write" in result.stderr

    def test_negative_values_stay_inside_the_plots(self):
        """Gauges and record() take negative values: the y range always spans zero and the values."""
        points = [
            Point("temperature", "gauge", "Cel", {}, 10.0 * i, 10.0 * (i + 1), value=-10 - 2 * i) for i in range(10)
        ]
        points += [
            Point("offset", "histogram", "s", {}, 10.0 * i, 10.0 * (i + 1), histogram=histogram([-0.5 * (i + 1), 0.25]))
            for i in range(10)
        ]
        page = render(Report.of(points))
        ys = [float(y) for y in re.findall(r'\b(?:y|cy|y1|y2)="(-?[0-9.]+)"', page)]
        ys += [float(pair.split(",")[1]) for found in re.findall(r'points="([^"]+)"', page) for pair in found.split()]
        assert ys and all(0 <= y <= _svg.HEIGHT for y in ys), sorted(ys)[:3] + sorted(ys)[-3:]

    def test_self_metrics_are_left_out_and_losses_said(self):
        """As in the tables: no instrument.* article, but a line when records were dropped."""
        points = [
            Point("jobs", "counter", "1", {}, 0.0, 10.0, value=1),
            Point("instrument.records.dropped", "counter", "", {"reason": "buffer_full"}, 0.0, 10.0, value=7),
        ]
        page = Page(render(Report.of(points)))
        assert 1 == page.count("article")
        assert "instrument lost data: 7 records dropped (buffer_full 7)" in page.text


class TestSummary:
    def test_slowest_routes_merge_statuses_and_sort_by_p50(self):
        """A route's statuses together; the slowest typical request first."""
        series = Report.of(service()).series()
        routes = _glance.slowest_routes(series)
        assert ["GET /slow/<int:id>", "GET /fast"] == [_glance.describe(r.name, r.tags) for r in routes]
        assert [630, 600] == [r.histogram.count for r in routes]

    def test_error_rates_per_operation(self):
        """The share of a route's calls recorded with an error: 1 of 21 per interval."""
        series = Report.of(service()).series()
        (failing,) = _glance.error_rates(series)
        assert ("GET /slow/<int:id>", 30, 630) == (
            _glance.describe(failing.name, failing.tags), failing.errors, failing.histogram.count
        )

    def test_biggest_p99s_are_durations_by_their_p99(self):
        """Each duration series by its p99, outcome included in its name; not row counts."""
        series = Report.of(service()).series()
        names = [_glance.describe(line.name, line.tags) for line in _glance.biggest_p99s(series)]
        assert ["GET /slow/<int:id> 503", "GET /slow/<int:id> 200", "GET /fast 200", "sqlite SELECT"] == names

    @pytest.mark.parametrize(
        ("name", "tags", "expected"),
        [
            ("http.client.request.duration", {"http.request.method": "GET", "server.address": "rates.internal",
                                              "server.port": 443, "error.type": "requests.exceptions.ReadTimeout"},
             "GET rates.internal:443 error=ReadTimeout"),
            ("db.client.operation.duration", {"db.system.name": "postgresql", "db.operation.name": "INSERT",
                                              "db.namespace": "loans"}, "postgresql INSERT"),
            ("payments.charge", {"provider": "acme", "error": "CardDeclined"}, "provider=acme error=CardDeclined"),
        ],
    )
    def test_series_are_named_as_people_say_them(self, name, tags, expected):
        """HTTP clients by address, databases by system and operation, anything else by its tags;
        errors by their class's own name."""
        assert expected == _glance.describe(name, tags)


class TestDistribution:
    def test_a_constant_is_one_bar_labelled_with_its_value(self):
        """returned_rows always 1: one bar '1', not a bucket bound such as 0.9892."""
        assert [("1", 2000)] == bins(histogram([1] * 2000), "{row}").categories

    def test_a_few_distinct_values_get_a_bar_each(self):
        """Whole numbers are labelled exactly, the smallest and largest with the exact min and max."""
        values = [0] * 3 + [1] * 5 + [2] * 7 + [5] * 2
        assert [("0", 3), ("1", 5), ("2", 7), ("5", 2)] == bins(histogram(values), "{row}").categories

    def test_many_values_in_at_most_max_bars_log_buckets(self):
        """Latencies over five decades: coarser buckets, every value still counted."""
        values = [1e-5 * 1.01**k for k in range(1200)]
        found = bins(histogram(values), "s")
        assert len(found.buckets) <= MAX_BARS
        assert len(values) == sum(n for _, _, n in found.buckets)
        assert found.buckets[0][0] <= min(values) and max(values) <= found.buckets[-1][1]

    def test_values_at_or_below_zero_are_counted_as_left_out(self):
        """A log axis cannot show them: the caption says how many."""
        found = bins(histogram([0.0] * 4 + [-1.0] * 2 + [1e-3 * 1.05**k for k in range(100)]), "s")
        assert 6 == found.left_out


class TestPlots:
    def test_linear_axes_tick_at_round_values_in_one_unit(self):
        """0 to 4.2 ms: ticks every 2 ms, all in ms, the axis widened to the last tick."""
        low, high, ticks = _svg.linear_ticks(0, 0.0042, "s")
        assert (0, 0.006) == (low, pytest.approx(high))
        assert ["0", "2 ms", "4 ms", "6 ms"] == [label for _, label in ticks]

    def test_log_axes_tick_at_one_two_five(self):
        """1 ms to 30 ms: 1, 2, 5, 10, 20 ms."""
        assert ["1 ms", "2 ms", "5 ms", "10 ms", "20 ms"] == [label for _, label in _svg.log_ticks(0.001, 0.03, "s")]

    def test_wide_log_axes_tick_at_powers_of_ten_only(self):
        """2 ms to 5 s: 1-2-5 would crowd eleven labels under one plot; powers of ten are enough."""
        assert ["10 ms", "100 ms", "1 s"] == [label for _, label in _svg.log_ticks(0.0018, 5.2, "s")]

    def test_byte_axes_tick_at_powers_of_two(self):
        """Sizes read as 1 KiB, 4 KiB, ... not 1000 B, 1.95 KiB."""
        labels = [label for _, label in _svg.log_ticks(1024, 1024**2, "By")]
        assert labels[0] == "1 KiB" and labels[-1] == "1 MiB" and all(" KiB" in x or " MiB" in x for x in labels)

    def test_time_axes_tick_at_round_clock_times(self):
        """Ten minutes: a tick every two minutes, on the minute (UTC)."""
        labels = [label for _, label in _svg.time_ticks(1_800_000_030, 1_800_000_630)]
        assert ["08:02", "08:04", "08:06", "08:08", "08:10"] == labels

    def test_percentile_lines_run_through_every_slot_with_counts(self):
        """Intervals half a slot out of phase, their ends jittering by 10 ms: no slot is left without
        counts or percentiles, and each percentile is one unbroken line."""
        points = [
            Point("t", "histogram", "s", {}, 1005.0 + 10 * i + 0.01 * (-1) ** i, 1015.0 + 10 * i + 0.01 * (-1) ** i,
                  histogram=histogram([0.01 * (1 + k % 5) for k in range(20)]))
            for i in range(30)
        ]
        page = render(Report.of(points))
        _, timeline = Report.of(points).timeline()
        (slots,) = timeline.values()
        lines = re.findall(r'<polyline points="([^"]+)"', page)
        assert len(QUANTILES) == len(lines)
        assert all(len(found.split()) == len(slots) for found in lines)
        assert all(slot is not None and slot.histogram.count for slot in slots)

    def test_axes_have_ticks_and_gridlines_and_the_legend_is_above_the_data(self):
        """A y axis with several labelled gridlines; legend keys in the top margin, above the plotting area."""
        svg = _svg.lines_over_time({"p50": [0.001, 0.002, 0.004], "p99": [0.003, 0.004, 0.006]},
                                   [0.0, 10.0, 20.0], 10.0, "s", "test")
        gridlines = re.findall(rf'<line x1="{_svg.LEFT}" x2="{_svg.WIDTH - _svg.RIGHT}" y1="[0-9.]+" y2="[0-9.]+" '
                               rf'stroke="{_svg.GRID}"/>', svg)
        assert len(gridlines) >= 4
        legend = re.findall(r'<text x="[0-9.]+" y="([0-9.]+)">(p50|p99)</text>', svg)
        assert {"p50", "p99"} == {name for _, name in legend}
        assert all(float(y) < _svg.TOP for y, _ in legend)

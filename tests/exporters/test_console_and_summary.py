"""console prints each interval; summary prints the whole run once, at shutdown; both, and
``instrument report``, print the same table: values with their units, instrument's own
metrics left out unless asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import instrument
from instrument._histogram import HistogramState
from instrument._model import QUANTILES, Batch, Point
from instrument.exporters._table import HEADER, render
from instrument.exporters.console import ConsoleExporter
from instrument.exporters.summary import SummaryExporter
from instrument.testing import capture

from ..tables import row, rows


def histogram(values, divisor=1.0):
    state = HistogramState(divisor)
    state.add_many(values)
    return state.freeze()


def point(name, unit="", tags=None, *, values=None, value=None, kind=None):
    """A point of one 10-second interval: a histogram of *values*, else a counter (or *kind*) of *value*."""
    if values is not None:
        return Point(name, "histogram", unit, tags or {}, 10.0, 20.0, histogram=histogram(values))
    return Point(name, kind or "counter", unit, tags or {}, 10.0, 20.0, value=value)


SELF = [
    point("instrument.records.dropped", tags={"reason": "buffer_full"}, value=12),
    point("instrument.records.dropped", tags={"reason": "export_queue_full", "exporter": "otlp"}, value=3),
    point("instrument.export.failures", tags={"exporter": "otlp"}, value=2),
    point("instrument.export.batches", tags={"exporter": "otlp"}, value=5),
]
QUIET_SELF = [
    point("instrument.records.dropped", tags={"reason": "buffer_full"}, value=0),
    point("instrument.export.batches", tags={"exporter": "console"}, value=1),
]


class TestTable:
    def test_the_columns_are_count_the_quantiles_max_and_value(self):
        """The quantile columns are _model.QUANTILES, the ones the jsonl lines carry."""
        assert ("metric", "tags", "count", *[name for name, _ in QUANTILES], "max", "value") == HEADER

    def test_every_value_carries_its_unit(self):
        """Durations in ms/us, bytes in KiB, counts ({request}) and unitless values as plain numbers."""
        table = render(
            [
                point("request.time", "s", {"route": "/a"}, values=[0.002] * 3),
                point("payload.size", "By", values=[1832] * 4),
                point("http.requests", "{request}", value=1234),
                point("loan.score", "1", kind="gauge", value=0.4973),
            ],
            "title",
        )
        quantiles = {"p50": "2 ms", "p90": "2 ms", "p99": "2 ms", "p999": "2 ms"}
        expected = {"metric": "request.time", "tags": "route=/a", "count": "3", **quantiles, "max": "2 ms", "value": ""}
        assert expected == row(table, "request.time", "route=/a")
        assert ["4", "1.79 KiB", "1.79 KiB"] == [row(table, "payload.size")[c] for c in ("count", "p50", "max")]
        assert "1234" == row(table, "http.requests")["value"]
        assert "0.497" == row(table, "loan.score")["value"]

    def test_whole_number_distributions_show_whole_quantiles(self):
        """Rows returned, retries: a quantile is the whole number in its bucket, not the bucket's middle."""
        table = render([point("db.rows", "{row}", values=[1] * 50 + [2] * 45 + [5] * 5)], "title")
        assert ["1", "2", "5", "5", "5"] == [row(table, "db.rows")[c] for c in ("p50", "p90", "p99", "p999", "max")]

    def test_numbers_align_right_and_text_left(self):
        """Units line up under each other: the numeric cells end where their header ends."""
        table = render([point("a", "s", values=[0.5]), point("b.longer", "s", values=[0.000123])], "title")
        header, first, second = table.splitlines()[1:]
        assert header.index("max") + 3 == len(first) == len(second)
        assert (0, 0) == (first.index("a"), second.index("b.longer"))

    def test_instrument_s_own_metrics_are_left_out_but_losses_are_said(self):
        """Self-metrics are hidden; records dropped and failed exports still get one line."""
        table = render([point("jobs", value=4), *SELF], "title")
        assert ["jobs"] == [r["metric"] for r in rows(table)]
        expected = (
            "instrument lost data: 15 records dropped (buffer_full 12, export_queue_full 3); 2 exports failed (otlp 2)"
        )
        assert expected == table.splitlines()[-1]

    def test_nothing_lost_adds_no_line(self):
        """Zero drops and no failures: the table ends with its last row."""
        table = render([point("jobs", value=4), *QUIET_SELF], "title")
        assert "jobs" == table.splitlines()[-1].split()[0]

    def test_asked_for_they_follow_in_their_own_section(self):
        """With self_metrics, instrument's own series come after the application's, under their own heading."""
        table = render([point("jobs", value=4), *SELF], "title", self_metrics=True)
        lines = table.splitlines()
        section = lines.index("instrument's own metrics:")
        assert ["jobs"] == [r["metric"] for r in rows("\n".join(lines[:section]))]
        assert 4 == len(rows("\n".join(lines[section:])))


class TestConsole:
    def test_each_interval_is_a_table_on_stderr(self, capsys):
        """A counter and a timer recorded in a block, printed as the console exporter prints an interval."""
        with capture() as captured:
            instrument.count("console.count", 7, tags={"k": "v"})
            with instrument.timer("console.timer"):
                time.sleep(0.002)
        ConsoleExporter().export(Batch(1, 0.0, 1.0, captured.points, 2))
        err = capsys.readouterr().err
        assert err.startswith("instrument: 1.0s to ")
        assert "7" == row(err, "console.count", "k=v")["value"]
        assert row(err, "console.timer")["p50"].endswith(" ms")

    def test_an_interval_with_only_instrument_s_own_metrics_prints_nothing(self, capsys):
        """The exporter's own batch counter does not make an idle interval print a table."""
        ConsoleExporter().export(Batch(1, 0.0, 1.0, list(QUIET_SELF), 0))
        assert "" == capsys.readouterr().err

    def test_losses_print_even_in_an_idle_interval(self, capsys):
        """Dropped records are worth a line on their own."""
        ConsoleExporter().export(Batch(1, 0.0, 1.0, list(SELF), 0))
        assert "instrument lost data: 15 records dropped" in capsys.readouterr().err

    def test_self_metrics_shown_when_asked(self, capsys):
        """ConsoleExporter(self_metrics=True) prints their section."""
        ConsoleExporter(self_metrics=True).export(Batch(1, 0.0, 1.0, list(QUIET_SELF), 0))
        err = capsys.readouterr().err
        assert "instrument's own metrics:" in err
        assert {"instrument.records.dropped", "instrument.export.batches"} == {r["metric"] for r in rows(err)}


class TestSummary:
    def test_summary_at_exit_merges_intervals(self, tmp_path):
        """The summary of a run spans all intervals: counts add up across exports."""
        code = (
            "import instrument, time\n"
            "@instrument.timed('summary.work')\n"
            "def work():\n"
            "    time.sleep(0.001)\n"
            "for _ in range(30):\n"
            "    work()\n"
            "    instrument.flush()\n"
        )
        env = {**os.environ, "INSTRUMENT_EXPORTERS": "summary"}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
        assert 0 == result.returncode, result.stderr
        assert result.stderr.startswith("instrument summary:")
        assert "30" == row(result.stderr, "summary.work")["count"]
        assert ["summary.work"] == [r["metric"] for r in rows(result.stderr)]

    def test_the_same_rows_as_the_console_for_the_same_points(self, capsys):
        """summary and console differ in their title only: same rows, same self-metrics rule."""
        points = [point("jobs", value=4), point("t", "s", values=[0.25, 0.5]), *SELF]
        ConsoleExporter().export(Batch(1, 10.0, 20.0, list(points), 0))
        console = capsys.readouterr().err
        summary = SummaryExporter()
        summary.export(Batch(1, 10.0, 20.0, list(points), 0))
        summary.shutdown()
        printed = capsys.readouterr().err
        assert console.splitlines()[1:] == printed.splitlines()[1:]

    def test_self_metrics_shown_when_asked(self, capsys):
        """SummaryExporter(self_metrics=True) prints their section."""
        summary = SummaryExporter(self_metrics=True)
        summary.export(Batch(1, 10.0, 20.0, [point("jobs", value=4), *SELF], 0))
        summary.shutdown()
        assert "instrument's own metrics:" in capsys.readouterr().err

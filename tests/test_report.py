"""`instrument report FILE.jsonl [--html OUT.html]`: jsonl lines of many intervals and
processes merged into one row per series, with percentiles of every recorded value."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from instrument._histogram import HistogramState
from instrument._model import Point, point_from_dict
from instrument.report import Report, read

from .tables import number, row, rows


def report(*args, cwd=None, stdin=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    return subprocess.run(
        [sys.executable, "-m", "instrument", "report", *args],
        cwd=cwd, env=base, input=stdin, capture_output=True, text=True, timeout=60,
    )


def exact_quantile(values, q):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def histogram(values, divisor=1.0):
    state = HistogramState(divisor)
    state.add_many(values)
    return state.freeze()


WORKER = textwrap.dedent("""
    import sys, instrument
    first, last = int(sys.argv[1]), int(sys.argv[2])
    for value in range(first, last):
        instrument.record("payload.size", value, unit="By")
        instrument.count("jobs.done")
        if value % 500 == 0:
            instrument.flush()  # several intervals per process
    instrument.gauge("queue.depth", last)
""")


@pytest.fixture
def two_workers(tmp_path):
    """The jsonl file two real processes append to, and the values they recorded."""
    path = tmp_path / "metrics.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    env.update(INSTRUMENT_EXPORTERS="jsonl", INSTRUMENT_JSONL_PATH=str(path))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [
        subprocess.Popen([sys.executable, str(script), str(first), str(last)], env=env)
        for first, last in ((1, 3001), (3001, 4001))
    ]
    assert [0, 0] == [w.wait(timeout=60) for w in workers]
    return path, list(range(1, 4001))


class TestReading:
    @pytest.mark.parametrize(
        "point",
        [
            Point("jobs", "counter", "1", {"queue": "a", "n": 3}, 10.0, 20.0, value=7),
            Point("depth", "gauge", "1", {}, 10.0, 20.0, value=2.5),
            Point("t", "histogram", "s", {"ok": True}, 10.0, 20.0, histogram=histogram([-2.0, 0, 0, 1e-4, 3.0, 3.0])),
        ],
        ids=["counter", "gauge", "histogram"],
    )
    def test_a_line_reads_back_as_the_point_that_wrote_it(self, point):
        back = point_from_dict(json.loads(json.dumps(point.as_dict())))
        assert (point.name, point.kind, point.unit, point.tags) == (back.name, back.kind, back.unit, back.tags)
        assert (point.start_time, point.end_time, point.value) == (back.start_time, back.end_time, back.value)
        assert point.histogram == back.histogram

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"name": 5}, "'name' must be a JSON string"),
            ({"name": None}, "missing 'name'"),
            ({"kind": "summary"}, "'kind' must be one of counter, gauge, histogram"),
            ({"tags": ["a"]}, "'tags' must be a JSON object"),
            ({"count": -1}, "'count' must not be negative"),
            ({"sum": "12"}, "'sum' must be a JSON number"),
            ({"buckets": {"scale": 6, "zero_count": 0, "negative": {"offset": 0, "counts": []}}},
             "missing 'buckets.positive'"),
            ({"buckets": {"scale": 6, "zero_count": 0, "positive": {"offset": 0, "counts": [1, -1]},
                          "negative": {"offset": 0, "counts": []}}},
             "'buckets.positive.counts' must hold counts"),
            ({"buckets": {"scale": 6, "zero_count": 0, "positive": {"offset": 70000, "counts": [1]},
                          "negative": {"offset": 0, "counts": []}}},
             "'buckets.positive' reaches beyond float range at scale 6"),
            ({"buckets": {"scale": -10, "zero_count": 0, "positive": {"offset": 0, "counts": [1]},
                          "negative": {"offset": 0, "counts": []}}},
             "'buckets.scale' must be within [-9, 20]"),
            ({"max": 10**400}, "'max' must be a finite number"),
            ({"start_time": 1e20}, "'start_time' must be Unix seconds"),
            ({"end_time": -1}, "'end_time' must be Unix seconds"),
            ({"tags": {"route": ["a"]}}, "tag 'route' must be a string, number or boolean"),
        ],
    )
    def test_a_malformed_line_names_the_field(self, change, message):
        data = Point("t", "histogram", "s", {}, 1.0, 2.0, histogram=histogram([1.0])).as_dict()
        data.update(change)
        data = {k: v for k, v in data.items() if v is not None}
        with pytest.raises(ValueError) as raised:
            point_from_dict(data)
        assert str(raised.value).startswith(message)

    def test_nan_and_infinity_are_refused(self):
        line = json.dumps(Point("depth", "gauge", "1", {}, 1.0, 2.0, value=1).as_dict())
        for bad in ("NaN", "Infinity", "-Infinity"):
            with pytest.raises(ValueError, match="'value' must be a finite number"):
                point_from_dict(json.loads(line.replace('"value": 1', f'"value": {bad}')))

    def test_metric_globs_choose_what_is_kept(self, two_workers):
        path, _ = two_workers
        names = {p.name for p in read([str(path)], ["payload.*", "queue.*"]).series()}
        assert {"payload.size", "queue.depth"} == names


class TestResource:
    def test_the_resources_of_the_lines_are_shown_under_the_title(self, tmp_path):
        """Each distinct "resource" of the lines read is one line under the title."""
        path = tmp_path / "r.jsonl"
        point = Point("jobs", "counter", "1", {}, 10.0, 20.0, value=1).as_dict()
        path.write_text("".join(json.dumps({**point, "resource": found}) + "\n" for found in (
            {"service.name": "payments", "service.version": "1.4"},
            {"service.version": "1.4", "service.name": "payments"},
            {"service.name": "billing"},
        )))
        result = report(str(path))
        assert 0 == result.returncode, result.stderr
        assert ["resource: service.name=payments, service.version=1.4", "resource: service.name=billing"] == \
            result.stdout.splitlines()[1:3]


class TestMerging:
    def test_the_row_of_a_histogram_covers_every_interval_of_every_process(self, two_workers):
        path, values = two_workers
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert len([x for x in lines if x["name"] == "payload.size"]) >= 8, "want several intervals"
        merged = {p.name: p for p in read([str(path)]).series()}
        size = merged["payload.size"].histogram
        assert len(values) == size.count
        assert sum(values) == size.sum
        assert (1, 4000) == (size.min, size.max)
        for q in (0.5, 0.9, 0.99, 0.999):
            assert math.isclose(exact_quantile(values, q), size.quantile(q), rel_tol=0.01)
        assert len(values) == merged["jobs.done"].value

    def test_the_printed_table_shows_the_merged_row(self, two_workers):
        path, values = two_workers
        result = report(str(path))
        assert 0 == result.returncode, result.stderr
        title = result.stdout.splitlines()[0]
        assert title.startswith("instrument report: ") and str(path) in title
        size = row(result.stdout, "payload.size")
        assert str(len(values)) == size["count"]
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):  # bytes, shown in KiB to three digits
            assert math.isclose(exact_quantile(values, q), number(size[name]), rel_tol=0.01 + 0.005)
        assert "3.91 KiB" == size["max"]  # 4000 bytes
        assert str(len(values)) == row(result.stdout, "jobs.done")["value"]

    def test_the_latest_gauge_value_wins(self, tmp_path):
        path = tmp_path / "g.jsonl"
        late = Point("depth", "gauge", "1", {}, 20.0, 30.0, value=5)
        early = Point("depth", "gauge", "1", {}, 10.0, 20.0, value=9)
        path.write_text("".join(json.dumps(p.as_dict()) + "\n" for p in (late, early)))
        assert [5] == [p.value for p in read([str(path)]).series()]

    def test_several_files_and_standard_input(self, tmp_path):
        a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        for path, value in ((a, 3), (b, 4)):
            path.write_text(json.dumps(Point("jobs", "counter", "1", {}, 1.0, 2.0, value=value).as_dict()) + "\n")
        result = report(str(a), "-", stdin=b.read_text())
        assert 0 == result.returncode, result.stderr
        assert "7" == row(result.stdout, "jobs")["value"]
        assert "<stdin>" in result.stdout.splitlines()[0]

    def test_timeline_slots_hold_whole_intervals(self):
        """Ten 10-second intervals over 100 s: one slot each, per series, merged across processes."""
        points = [
            Point("jobs", "counter", "1", {}, 10.0 * i, 10.0 * (i + 1), value=i + process)
            for i in range(10)
            for process in (0, 100)
        ]
        starts, timeline = Report.of(points).timeline()
        assert 10 == len(starts)
        (slots,) = timeline.values()
        assert [2 * i + 100 for i in range(10)] == [slot.amount for slot in slots]


class TestBadInput:
    def test_a_missing_file_is_named(self, tmp_path):
        result = report(str(tmp_path / "nope.jsonl"))
        assert 2 == result.returncode
        assert "cannot read" in result.stderr and "nope.jsonl" in result.stderr

    def test_a_malformed_line_is_named_by_file_and_number(self, tmp_path):
        path = tmp_path / "bad.jsonl"
        good = json.dumps(Point("jobs", "counter", "1", {}, 1.0, 2.0, value=1).as_dict())
        path.write_text(f"{good}\n{{not json\n{good}\n")
        result = report(str(path))
        assert 2 == result.returncode
        assert f"{path}:2: not JSON" in result.stderr
        assert "" == result.stdout

    def test_a_truncated_last_line_is_left_out_with_a_note(self, tmp_path):
        """A process killed in the middle of a write leaves half a line at the end."""
        path = tmp_path / "cut.jsonl"
        good = json.dumps(Point("jobs", "counter", "1", {}, 1.0, 2.0, value=4).as_dict())
        path.write_text(f"{good}\n{good[:20]}")
        result = report(str(path))
        assert 0 == result.returncode, result.stderr
        assert "4" == row(result.stdout, "jobs")["value"]
        assert f"{path}:2: not JSON" in result.stderr and "truncated last line" in result.stderr

    def test_an_empty_file_says_so(self, tmp_path):
        path = tmp_path / "empty.jsonl"
        path.write_text("")
        result = report(str(path))
        assert 0 == result.returncode
        assert result.stdout.startswith(f"instrument report: no metrics in {path}")

    def test_a_binary_file_is_not_a_jsonl_export(self, tmp_path):
        path = tmp_path / "core"
        path.write_bytes(b"\x7fELF\xff\xfe\x00")
        result = report(str(path))
        assert 2 == result.returncode
        assert "is not a jsonl export" in result.stderr


class TestOutput:
    def test_undecodable_file_names_in_tags_are_written_escaped(self, tmp_path):
        """A tag from os.fsdecode() of a Latin-1 file name holds a lone surrogate; UTF-8 cannot encode it."""
        path = tmp_path / "s.jsonl"
        tags = {"file": os.fsdecode(b"caf\xe9.txt")}
        path.write_text(json.dumps(Point("opened", "counter", "1", tags, 1.0, 2.0, value=2).as_dict()) + "\n")
        out = tmp_path / "s.html"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        result = subprocess.run(
            [sys.executable, "-m", "instrument", "report", str(path), "--html", str(out)],
            env={**env, "PYTHONIOENCODING": "utf-8"}, capture_output=True, text=True, timeout=60,
        )
        assert 0 == result.returncode, result.stderr
        assert "file=caf\\udce9.txt" in result.stdout
        assert "caf\\udce9.txt" in out.read_text()

    def test_the_command_exports_nothing_itself(self, two_workers):
        """With the service's INSTRUMENT_* variables set, the report neither tries the Prometheus
        port (held here: trying would warn) nor appends to the file it reads."""
        path, _ = two_workers
        before = path.read_bytes()
        with socket.create_server(("127.0.0.1", 0)) as held:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
            env.update(
                INSTRUMENT_EXPORTERS="prometheus,jsonl",
                INSTRUMENT_JSONL_PATH=str(path),
                INSTRUMENT_PROMETHEUS_ADDRESS=f"127.0.0.1:{held.getsockname()[1]}",
            )
            result = subprocess.run(
                [sys.executable, "-m", "instrument", "report", str(path)], env=env, capture_output=True, text=True,
                timeout=60,
            )
        assert 0 == result.returncode, result.stderr
        assert "" == result.stderr
        assert before == path.read_bytes()


class TestTimeline:
    def test_an_interval_across_two_slots_shares_its_count_and_counts_in_both_percentiles(self):
        """A process out of phase with the slots: each slot gets its share of the count (so the rate
        over time stays smooth) and the histogram of every interval overlapping it (no slot with counts
        lacks percentiles)."""
        aligned = [Point("t", "histogram", "s", {}, 10.0 * i, 10.0 * (i + 1), histogram=histogram([0.1] * 10))
                   for i in range(30)]
        shifted = Point("t", "histogram", "s", {}, 297.5, 307.5, histogram=histogram([0.5] * 40))  # 3/4 past 300
        starts, timeline = Report.of([*aligned, shifted]).timeline()
        (slots,) = timeline.values()
        last, before = slots[-1], slots[-2]
        assert (290.0, 300.0) == (starts[-2], starts[-1])
        assert (10 + 10, 30) == (before.amount, last.amount)
        assert (10 + 40, 40) == (before.histogram.count, last.histogram.count)

    def test_a_gauge_belongs_to_the_slot_it_was_reported_in(self):
        """A gauge is a value at the end of its interval; the later one wins within a slot."""
        points = [Point("depth", "gauge", "1", {}, 10.0 * i + 1, 10.0 * (i + 1) + 1, value=i) for i in range(50)]
        starts, timeline = Report.of(points).timeline()
        (slots,) = timeline.values()
        assert 10.0 == starts[0]  # the first interval, 1 s to 11 s, ends in the slot from 10 s (its middle does not)
        assert list(range(50)) == [slot.value for slot in slots]

    def test_a_long_span_is_at_most_sixty_slots_and_keeps_every_count(self):
        """A day of 10-second intervals: slots merge into whole multiples of the interval, totals exact."""
        points = [Point("jobs", "counter", "1", {}, 10.0 * i, 10.0 * (i + 1), value=1) for i in range(8640)]
        starts, timeline = Report.of(points).timeline()
        (slots,) = timeline.values()
        width = starts[1] - starts[0]
        assert len(starts) <= 60
        assert 0 == width % 10
        assert 8640 == sum(slot.amount for slot in slots if slot is not None)

    def test_points_out_of_order_land_in_the_same_slots(self):
        """Several files and processes are read one after the other: order does not matter."""
        points = [Point("jobs", "counter", "1", {"p": p}, 10.0 * i, 10.0 * (i + 1), value=i + 1)
                  for p in range(3) for i in range(100)]
        forwards = Report.of(points).timeline()
        backwards = Report.of(list(reversed(points))).timeline()
        assert forwards[0] == backwards[0]
        assert {k: [s and s.amount for s in v] for k, v in forwards[1].items()} == {
            k: [s and s.amount for s in v] for k, v in backwards[1].items()
        }


def self_metric_lines():
    """An application's counter and instrument's own metrics, two intervals of them."""
    points = []
    for i in range(2):
        points += [
            Point("jobs", "counter", "1", {}, 10.0 * i, 10.0 * (i + 1), value=3),
            Point("instrument.records.dropped", "counter", "", {"reason": "buffer_full"}, 10.0 * i, 10.0 * (i + 1),
                  value=5),
            Point("instrument.export.batches", "counter", "", {"exporter": "jsonl"}, 10.0 * i, 10.0 * (i + 1), value=1),
        ]
    return "".join(json.dumps(p.as_dict()) + "\n" for p in points)


class TestSelfMetrics:
    def test_left_out_with_a_line_for_what_was_lost(self, tmp_path):
        """Like console and summary: instrument.* hidden, but dropped records said."""
        path = tmp_path / "m.jsonl"
        path.write_text(self_metric_lines())
        result = report(str(path))
        assert 0 == result.returncode, result.stderr
        assert ["jobs"] == [r["metric"] for r in rows(result.stdout)]
        assert "instrument lost data: 10 records dropped (buffer_full 10)" == result.stdout.splitlines()[-1]

    def test_shown_in_their_own_section_with_self_metrics(self, tmp_path):
        """--self-metrics: their rows follow the application's, under their own heading."""
        path = tmp_path / "m.jsonl"
        path.write_text(self_metric_lines())
        result = report(str(path), "--self-metrics")
        assert 0 == result.returncode, result.stderr
        section = result.stdout.split("instrument's own metrics:")[1]
        assert {"instrument.records.dropped": "10", "instrument.export.batches": "2"} == {
            r["metric"]: r["value"] for r in rows(section)
        }

    def test_only_self_metrics_say_how_to_see_them(self, tmp_path):
        """A file of nothing but instrument's own metrics does not look empty without explanation."""
        path = tmp_path / "m.jsonl"
        path.write_text(self_metric_lines())
        result = report(str(path), "--metric", "instrument.*")
        assert "(instrument's own are hidden: --self-metrics shows them)" in result.stdout.splitlines()[0]

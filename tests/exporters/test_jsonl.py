"""jsonl: one JSON object per series per interval, appended whole-line by whole-line."""

from __future__ import annotations

import json
import os
import time

import instrument
from instrument.exporters.jsonl import JsonlExporter
from instrument.testing import capture


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_schema_of_each_kind(tmp_path):
    path = tmp_path / "m.jsonl"
    exporter = JsonlExporter(path=str(path))
    with capture() as captured:
        instrument.count("jsonl.counter", 3, tags={"k": "v"})
        instrument.gauge("jsonl.gauge", 1.5)
        with instrument.timer("jsonl.timer"):
            time.sleep(0.001)
    from instrument._model import Batch

    exporter.export(Batch(1, 0.0, 1.0, captured.points, 3))
    exporter.shutdown()
    by_name = {line["name"]: line for line in lines(path)}
    common = {"name", "kind", "unit", "tags", "start_time", "end_time"}
    assert common | {"value"} == set(by_name["jsonl.counter"])
    counter = by_name["jsonl.counter"]
    assert ("counter", 3, {"k": "v"}, "") == (counter["kind"], counter["value"], counter["tags"], counter["unit"])
    assert ("gauge", 1.5) == (by_name["jsonl.gauge"]["kind"], by_name["jsonl.gauge"]["value"])
    timer = by_name["jsonl.timer"]
    assert common | {"count", "sum", "min", "max", "p50", "p90", "p99", "p999", "buckets"} == set(timer)
    assert ("histogram", "s", 1) == (timer["kind"], timer["unit"], timer["count"])
    assert 0.001 <= timer["min"] == timer["max"] == timer["p50"] <= timer["sum"] < 1
    assert {"scale", "zero_count", "positive", "negative"} == set(timer["buckets"])
    assert 1 == sum(timer["buckets"]["positive"]["counts"])


def test_every_line_carries_the_resource(tmp_path, monkeypatch):
    """With resource attributes set, each line has them in a "resource" object; without, no field."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payments")
    from instrument._config import Config
    from instrument._model import Batch

    path = tmp_path / "r.jsonl"
    exporter = JsonlExporter(Config(jsonl_path=str(path), resource={"service.version": "1.4"}))
    with capture() as captured:
        instrument.count("jsonl.resourced", 1)
    exporter.export(Batch(1, 0.0, 1.0, captured.points, 1))
    exporter.shutdown()
    assert [{"service.name": "payments", "service.version": "1.4"}] == [line["resource"] for line in lines(path)]
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    bare = JsonlExporter(path=str(tmp_path / "bare.jsonl"))
    bare.export(Batch(1, 0.0, 1.0, captured.points, 1))
    bare.shutdown()
    assert ["resource" in line for line in lines(tmp_path / "bare.jsonl")] == [False]


def test_appends_and_never_truncates(tmp_path, exported):
    path = tmp_path / "m.jsonl"
    path.write_text('{"existing": true}\n')
    instrument.configure(exporters=["jsonl"], jsonl_path=str(path))
    try:
        instrument.count("jsonl.append")
        instrument.flush(5.0)
        instrument.count("jsonl.append")
        instrument.flush(5.0)
    finally:
        instrument.configure(exporters=[exported])
    content = lines(path)
    assert {"existing": True} == content[0]
    assert 2 == sum(1 for line in content if line.get("name") == "jsonl.append")


def test_path_fixed_at_creation_despite_chdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exporter = JsonlExporter(path="rel.jsonl")
    assert str(tmp_path / "rel.jsonl") == exporter.path


def test_processes_share_one_file_with_whole_lines(tmp_path):
    """Several processes appending big batches concurrently never interleave inside a line."""
    path = tmp_path / "shared.jsonl"
    from instrument._model import Batch, Point

    points = [Point("jsonl.shared", "counter", "", {"i": i, "pad": "x" * 200}, 0.0, 1.0, value=1) for i in range(500)]
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                exporter = JsonlExporter(path=str(path))
                for seq in range(10):
                    exporter.export(Batch(seq, 0.0, 1.0, points, 500))
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        assert 0 == os.waitpid(pid, 0)[1]
    content = lines(path)  # every line parses: none was torn
    assert 4 * 10 * 500 == len(content)

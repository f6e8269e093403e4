"""console prints each interval; summary prints the whole run once, at shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import instrument
from instrument._model import Batch
from instrument.exporters.console import ConsoleExporter
from instrument.testing import capture


def test_console_table(capsys):
    with capture() as captured:
        instrument.count("console.count", 7, tags={"k": "v"})
        with instrument.timer("console.timer"):
            time.sleep(0.002)
    ConsoleExporter().export(Batch(1, 0.0, 1.0, captured.points, 2))
    err = capsys.readouterr().err
    header, *rows = err.splitlines()[1:]
    assert header.split() == ["metric", "tags", "count", "p50", "p90", "p99", "max", "value"]
    assert any(r.split() == ["console.count", "k=v", "7"] for r in rows)
    timer_row = next(r for r in rows if r.startswith("console.timer"))
    assert "ms" in timer_row


def test_summary_at_exit_merges_intervals(tmp_path):
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
    lines = result.stderr.splitlines()
    assert lines[0].startswith("instrument summary:")
    row = next(line for line in lines if line.startswith("summary.work"))
    assert "30" == row.split()[1]
    assert not any(line.startswith("instrument.") for line in lines[1:])

"""``instrument report`` streams: memory grows with the number of series, not of lines, and a
terminal sees how far reading has come."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import textwrap

import pytest

from instrument.report._progress import Progress

from .tables import row

INTERVALS = 10_000
SERIES = 100  # a third each histograms, counters and gauges: INTERVALS * SERIES = 1 M lines
HISTOGRAM = (
    '{{"name":"latency.{s}","kind":"histogram","unit":"s","tags":{{"route":"/r{s}","worker":"{w}"}},'
    '"start_time":{start},"end_time":{end},"count":{count},"sum":{total},"min":0.001,"max":0.02,'
    '"p50":0.005,"p90":0.01,"p99":0.02,"p999":0.02,"buckets":{{"scale":6,"zero_count":0,'
    '"positive":{{"offset":{offset},"counts":[{counts}]}},"negative":{{"offset":0,"counts":[]}}}}}}\n'
)
COUNTER = (
    '{{"name":"jobs.{s}","kind":"counter","unit":"{{job}}","tags":{{"queue":"q{s}","worker":"{w}"}},'
    '"start_time":{start},"end_time":{end},"value":{value}}}\n'
)
GAUGE = (
    '{{"name":"depth.{s}","kind":"gauge","unit":"{{job}}","tags":{{"queue":"q{s}","worker":"{w}"}},'
    '"start_time":{start},"end_time":{end},"value":{value}}}\n'
)

# Runs the command in a child, so that its peak memory is its own. The peak is the child's
# VmHWM: Linux carries ru_maxrss across exec, so a child of a large pytest process would
# report the parent's size at fork instead.
MEASURE = textwrap.dedent("""
    import contextlib, io, json, re, sys
    from instrument._cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["report", sys.argv[1]])
    with open("/proc/self/status") as proc:
        peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", proc.read()).group(1)) * 1024
    print(json.dumps({"status": status, "peak": peak, "table": out.getvalue()}))
""")


@pytest.fixture(scope="module")
def million_lines(tmp_path_factory):
    """A jsonl file of 1 M lines: 100 series over 10,000 ten-second intervals; each counter adds 1 + i % 7."""
    path = tmp_path_factory.mktemp("big") / "metrics.jsonl"
    start = 1_796_500_000
    with open(path, "w") as out:
        for i in range(INTERVALS):
            when = {"start": start + 10 * i, "end": start + 10 * i + 10}
            lines = []
            for s in range(SERIES):
                kind, w = s % 3, s % 2
                if kind == 0:
                    counts = [(i + s + k) % 10 for k in range(8)]
                    count = sum(counts)
                    lines.append(HISTOGRAM.format(
                        s=s, w=w, **when, count=count, total=0.01 * count, offset=-600 + (i + s) % 40,
                        counts=",".join(map(str, counts)),
                    ))
                else:
                    lines.append((COUNTER if kind == 1 else GAUGE).format(s=s, w=w, **when, value=1 + i % 7))
            out.write("".join(lines))
    return path


def child_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}


@pytest.mark.once
class TestMemory:
    def test_a_million_lines_take_less_than_100_mb(self, million_lines):
        """Peak memory (RSS) of the whole command, table printed, stays under 100 MB, and the totals are exact."""
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, str(million_lines)], env=child_env(), capture_output=True, text=True,
            timeout=600,
        )
        assert 0 == result.returncode, result.stderr
        measured = json.loads(result.stdout)
        assert 0 == measured["status"]
        assert measured["peak"] < 100e6, f"peak RSS {measured['peak'] / 1e6:.0f} MB"
        expected = sum(1 + i % 7 for i in range(INTERVALS))
        assert str(expected) == row(measured["table"], "jobs.1", "queue=q1,worker=1")["value"]
        assert "" == result.stderr  # not a terminal: no progress line


class TestProgress:
    def test_a_terminal_sees_how_far_reading_has_come(self, million_lines):
        """With stderr on a terminal, a line says how far reading has come (the test stops at the
        second update: one line rewritten, not a new line each time)."""
        controller, terminal = pty.openpty()
        child = subprocess.Popen(
            [sys.executable, "-m", "instrument", "report", str(million_lines)],
            stdout=subprocess.DEVNULL, stderr=terminal, env=child_env(),
        )
        os.close(terminal)
        seen = b""
        try:
            while seen.count(b"%") < 2:
                chunk = os.read(controller, 65536)  # OSError (EIO) if the child ends first
                seen += chunk
        finally:
            child.kill()
            child.wait(timeout=60)
            os.close(controller)
        first, second = seen.decode().split("\r")[1:3]
        prefix = f"instrument report: reading {million_lines}: "
        assert first.startswith(prefix) and second.startswith(prefix), seen
        assert first.endswith("\x1b[K") and "\n" not in first
        assert "% (" in first and " lines)" in first

    def test_updates_say_the_share_read_of_a_known_size(self):
        """Past its delay, an update names the file, the percentage, bytes and lines."""
        stream = io.StringIO()
        progress = Progress(stream, delay=0, every=0)
        progress.file("m.jsonl", 4 * 1024 * 1024)
        progress.update(1024 * 1024, 5000)
        progress.done()
        expected = "\rinstrument report: reading m.jsonl: 25% (1 MiB of 4 MiB, 5,000 lines)\x1b[K\r\x1b[K"
        assert expected == stream.getvalue()

    def test_nothing_is_shown_before_the_delay(self):
        """Small files, read in under a second, print no progress at all."""
        stream = io.StringIO()
        progress = Progress(stream, delay=60, every=0)
        progress.file("m.jsonl", None)
        progress.update(100, 2)
        progress.done()
        assert "" == stream.getvalue()

    def test_only_on_a_terminal(self):
        """Piped or redirected stderr gets no progress."""
        assert Progress.for_terminal(io.StringIO()) is None

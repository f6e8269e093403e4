"""A process that records once and ends at once delivers that record, with every exporter.

Each run is a fresh interpreter configured only through ``INSTRUMENT_*`` variables (as
under ``instrument run``), which counts one event tagged with its own run id and then
ends: by returning, ``sys.exit()``, an uncaught exception, SIGINT, or SIGTERM (with
``INSTRUMENT_FLUSH_ON_SIGTERM``). The record must reach the real receiver on 127.0.0.1
every time, and the process must end exactly as it would uninstrumented.

``INSTRUMENT_DELIVERY_RUNS`` sets the runs per case (3 by default; tox runs 20 under
one interpreter).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .receivers import Receiver

RUNS = int(os.environ.get("INSTRUMENT_DELIVERY_RUNS", "3"))

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import instrument

    instrument.count("delivery.check", 1, tags={"run": sys.argv[1]})
    how = sys.argv[2]
    if how == "sys.exit":
        sys.exit(3)
    if how == "exception":
        raise RuntimeError("the program fails")
    if how in ("SIGINT", "SIGTERM"):
        os.kill(os.getpid(), getattr(signal, how))
        time.sleep(30)
        sys.exit("the signal did not end the process")
""")

# How each way of ending shows in the exit status, instrumented or not.
ENDINGS = {
    "return": 0,
    "sys.exit": 3,
    "exception": 1,
    "SIGINT": -signal.SIGINT,
    "SIGTERM": -signal.SIGTERM,
}


def child_environment(receiver: Receiver) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "OTEL_"))}
    env.update(
        INSTRUMENT_EXPORTERS=receiver.exporter,
        INSTRUMENT_FLUSH_ON_SIGTERM="true",
        INSTRUMENT_INTERVAL="3600",  # nothing is exported before the process ends
        **receiver.environment(),
    )
    return env


def run_children(script: Path, env: dict[str, str], how: str, runs: int) -> dict[str, subprocess.CompletedProcess[str]]:
    """Start *runs* children ending *how*, a few at a time; their results by run id."""
    ids = [f"r{uuid.uuid4().hex[:12]}" for _ in range(runs)]

    def one(run: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), run, how], env=env, capture_output=True, text=True, timeout=60,
        )

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))


@pytest.mark.parametrize("how", list(ENDINGS))
def test_the_last_record_arrives_however_the_process_ends(receiver: Receiver, how: str, tmp_path: Path) -> None:
    """Every run's one record reaches the receiver, and every run ends with its own status."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    results = run_children(script, child_environment(receiver), how, RUNS)
    statuses = {run: result.returncode for run, result in results.items()}
    assert {run: ENDINGS[how] for run in results} == statuses, [r.stderr for r in results.values()][:2]
    complaints = [r.stderr for r in results.values() if "instrument:" in r.stderr]
    assert [] == complaints
    missing = set(results) - _wait_for(receiver, set(results))
    assert set() == missing, f"{len(missing)} of {RUNS} runs lost their record"


def _wait_for(receiver: Receiver, runs: set[str], timeout: float = 5.0) -> set[str]:
    """What *receiver* got of *runs*, waiting a little for datagrams and requests in flight."""
    deadline = time.monotonic() + timeout
    while True:
        got = receiver.received() & runs
        if got == runs or time.monotonic() > deadline:
            return got
        time.sleep(0.05)



BACKGROUND_IMPORTS = textwrap.dedent("""
    import os, sys, threading
    import instrument

    imported = []

    def audit(event, args):
        if event == "import" and threading.current_thread() is not threading.main_thread():
            imported.append((threading.current_thread().name, args[0]))

    instrument.count("imports.check", tags={"run": sys.argv[1]})  # the pipeline starts here
    sys.addaudithook(audit)
    for _ in range(3):
        instrument.record("imports.sizes", 1832.0, unit="By")
        instrument.gauge("imports.depth", 3)
        instrument.flush(5.0)
    pid = os.fork()
    if pid == 0:
        instrument.count("imports.check", tags={"run": sys.argv[1]})
        instrument.flush(5.0)
        print(file=sys.stderr)
        print(f"IMPORTED {imported!r}", file=sys.stderr)
        os._exit(0)
    os.waitpid(pid, 0)
    instrument.shutdown(5.0)
    print(file=sys.stderr)
    print(f"IMPORTED {imported!r}", file=sys.stderr)
""")


def imported_lines(stderr: str) -> list[str]:
    """What the parent and its forked child reported of imports on background threads."""
    return [line for line in stderr.splitlines() if line.startswith("IMPORTED ")]


def test_no_module_is_imported_on_a_background_thread(receiver: Receiver, tmp_path: Path) -> None:
    """After start, exporting (and a forked child's exporting) imports nothing on instrument's threads."""
    script = tmp_path / "imports.py"
    script.write_text(BACKGROUND_IMPORTS)
    result = subprocess.run([sys.executable, str(script), "r1"], env=child_environment(receiver),
                            capture_output=True, text=True, timeout=60)
    assert (0, ["IMPORTED []", "IMPORTED []"]) == (result.returncode, imported_lines(result.stderr)), result.stderr


@pytest.mark.parametrize("exporter", ["otlp", "http"])
def test_no_module_is_imported_on_a_background_thread_when_the_backend_is_down(
    exporter: str, tmp_path: Path
) -> None:
    """Failing exports, retried and logged, import nothing on instrument's threads either."""
    from ..helpers import free_port

    script = tmp_path / "imports.py"
    script.write_text(BACKGROUND_IMPORTS.replace("instrument.flush(5.0)", "instrument.flush(0.5)"))
    url = f"http://127.0.0.1:{free_port()}/v1/metrics"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "OTEL_"))}
    env.update(INSTRUMENT_EXPORTERS=exporter, INSTRUMENT_HTTP_URL=url, INSTRUMENT_INTERVAL="3600",
               OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=url, OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="1")
    result = subprocess.run([sys.executable, str(script), "r1"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert (0, ["IMPORTED []", "IMPORTED []"]) == (result.returncode, imported_lines(result.stderr)), result.stderr

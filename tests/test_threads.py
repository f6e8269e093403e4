"""instrument's own threads never take a signal sent to the process: the program's main
thread (or its own threads) does, as without instrument."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import instrument
from instrument import _threads
from instrument.exporters.prometheus import PrometheusExporter
from instrument.testing import reset


def blocked_signals(thread: threading.Thread) -> set[int]:
    """The signals *thread* blocks, read from /proc (Linux)."""
    status = open(f"/proc/self/task/{thread.native_id}/status").read()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


class TestOwnThreads:
    def test_every_thread_of_ours_blocks_every_asynchronous_signal(self):
        """Collector, export threads and the Prometheus endpoint's: SIGTERM, SIGINT, SIGHUP... blocked."""
        endpoint = PrometheusExporter(address=("127.0.0.1", 0))
        try:
            instrument.configure(exporters=[endpoint, "memory"], interval=3600.0)
            instrument.count("threads.started")
            instrument.flush(5.0)
            ours = [t for t in threading.enumerate() if t.name.startswith("instrument-")]
            assert {"instrument-collector", "instrument-export-memory", "instrument-prometheus-http"} <= {
                t.name for t in ours}
            for thread in ours:
                assert {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1} <= blocked_signals(thread), \
                    thread.name
            assert signal.SIGTERM not in blocked_signals(threading.current_thread())  # ours only
        finally:
            reset()
            endpoint.shutdown()

    def test_synchronous_faults_are_left_to_the_faulting_thread(self):
        assert {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE} & _threads.ASYNCHRONOUS == set()


BLOCKED_MAIN = textwrap.dedent("""
    import signal, sys
    import instrument

    def stop(signum, frame):
        import os
        os.write(1, b"stopped\\n")
        sys.exit(0)

    signal.signal(signal.SIGUSR1, stop)
    instrument.count("threads.child")  # starts the collector and the export thread
    print("ready", flush=True)
    sys.stdin.read()  # blocked in a system call, as a server in accept() is
""")


def test_a_signal_to_the_process_reaches_the_blocked_main_thread(tmp_path):
    """30 processes, each sent SIGUSR1 while its main thread waits on stdin: every handler runs."""
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKED_MAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    env["INSTRUMENT_EXPORTERS"] = "memory"
    for _ in range(30):
        process = subprocess.Popen([sys.executable, str(script)], env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        assert "ready\n" == process.stdout.readline()
        process.send_signal(signal.SIGUSR1)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError("the program's handler did not run: the signal went to another thread") from None
        assert (0, "stopped\n") == (process.returncode, output)

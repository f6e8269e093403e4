"""The runtime: `import instrument` defines and does nothing else; starting is explicit;
`instrument.testing.reset()` puts everything back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import instrument
from instrument import _buffers, _record
from instrument._config import settings
from instrument._runtime import RUNTIME
from instrument.exporters.memory import MemoryExporter
from instrument.testing import capture, reset

from .helpers import free_port

IMPORT_ONLY = textwrap.dedent("""
    import atexit, signal, sys, threading
    before = atexit._ncallbacks()
    import instrument
    print([t.name for t in threading.enumerate() if t is not threading.main_thread()])
    print(atexit._ncallbacks() - before, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
""")


class TestImport:
    def test_import_starts_nothing(self, tmp_path):
        """With exporters configured by the environment (a Prometheus port, a jsonl file, SIGTERM
        flushing), importing starts no thread, registers no exit hook or signal handler, binds
        no port and creates no file."""
        port = free_port()
        jsonl = tmp_path / "never.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
        env.update(INSTRUMENT_EXPORTERS="prometheus,jsonl", INSTRUMENT_PROMETHEUS_ADDRESS=f"127.0.0.1:{port}",
                   INSTRUMENT_JSONL_PATH=str(jsonl), INSTRUMENT_FLUSH_ON_SIGTERM="true")
        result = subprocess.run([sys.executable, "-c", IMPORT_ONLY], env=env, capture_output=True, text=True,
                                timeout=60)
        assert (0, ["[]", "0 True"], "") == (result.returncode, result.stdout.splitlines(), result.stderr)
        assert not jsonl.exists()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # nobody took the port

    def test_import_with_a_bad_variable_does_not_raise(self):
        env = {**os.environ, "INSTRUMENT_QUEUE_SIZE": "many"}
        result = subprocess.run([sys.executable, "-c", "import instrument"], env=env, capture_output=True, text=True)
        assert (0, "") == (result.returncode, result.stderr)


class TestStart:
    def test_the_first_record_starts_the_collector_in_a_process_configured_by_the_environment(self):
        code = (
            "import threading, instrument\n"
            "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('instrument')))\n"
            "instrument.gauge('start.only.a.gauge', 1)\n"
            "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('instrument')))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        env["INSTRUMENT_EXPORTERS"] = "memory"
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert ["[]", "['instrument-collector', 'instrument-export-memory']"] == result.stdout.splitlines()


class TestReset:
    def test_reset_restores_the_state_after_import(self):
        """Configured, recording, a gauge set, SIGTERM handled: reset() undoes all of it."""
        exporter = MemoryExporter()
        instrument.configure(exporters=[exporter], interval=3600.0, buffer_size=64, flush_on_sigterm=True)
        instrument.count("reset.pending", 5)
        instrument.gauge("reset.depth", 3)
        assert RUNTIME.started

        reset()

        assert not RUNTIME.started
        assert [t for t in threading.enumerate() if t.name.startswith("instrument-")] == []
        assert exporter.shut_down
        assert {} == settings.arguments
        assert 262_144 == settings.current.buffer_size
        assert _buffers.slow_threshold(262_144, 1_048_576) == _record.SLOW_AT
        assert signal.SIG_DFL is signal.getsignal(signal.SIGTERM)
        with capture() as captured:
            instrument.count("reset.after")
        assert ["reset.after"] == captured.names()  # nothing pending from before, no old gauge

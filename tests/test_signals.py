"""SIGTERM, the way Kubernetes, systemd and `docker stop` end a service: what was recorded is
exported, the process still ends as SIGTERM ends it, and a program's own handler always wins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import instrument
from instrument import _log, _signals
from instrument._config import ConfigurationError

SERVICE = textwrap.dedent("""
    import os, signal, sys
    import instrument

    if sys.argv[1] == "own-handler-later":
        def stop(signum, frame):
            # os.write, not print: the signal may land while print("ready") is still inside
            # stdout's buffered writer, and print would then fail with a reentrant call.
            os.write(1, b"the program's handler ran\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
    for _ in range(5000):
        instrument.count("signals.work")
    print("ready", flush=True)
    sys.stdin.read()  # until the signal
""")


def run_service(tmp_path: Path, mode: str, *, launcher: bool = True, **popen: object) -> tuple[int, str, int]:
    """Start the service (under `instrument run` unless *launcher* is False), SIGTERM it once it
    has recorded; its status, output and the count exported."""
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    out = tmp_path / "service.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    env.update(INSTRUMENT_EXPORTERS="jsonl", INSTRUMENT_JSONL_PATH=str(out), INSTRUMENT_INTERVAL="3600")
    prefix = [sys.executable, "-m", "instrument", "run", "--"] if launcher else []
    process = subprocess.Popen([*prefix, sys.executable, str(script), mode], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    assert process.stdout is not None
    lines = [process.stdout.readline()]
    if lines[0] == "ready\n":
        process.send_signal(signal.SIGTERM)
    try:
        lines.append(process.stdout.read())
        status = process.wait(30)
    finally:
        process.kill()
        process.stdin.close()  # type: ignore[union-attr]
        process.stdout.close()
    exported = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return status, "".join(lines), sum(p["value"] for p in exported if p["name"] == "signals.work")


class TestUnderInstrumentRun:
    def test_sigterm_exports_what_was_recorded_and_still_ends_the_process(self, tmp_path):
        """The 5,000 records made before SIGTERM arrive; the status is still 'killed by SIGTERM'."""
        assert (-signal.SIGTERM, "ready\n", 5000) == run_service(tmp_path, "plain")

    def test_a_handler_the_program_installs_later_replaces_ours(self, tmp_path):
        """The program's own handler runs (and exits through sys.exit, which flushes)."""
        assert (0, "ready\nthe program's handler ran\n", 5000) == run_service(tmp_path, "own-handler-later")

    def test_an_ignored_sigterm_stays_ignored(self, tmp_path):
        """Started with SIGTERM ignored (as nohup-like launchers do), the process ignores it still."""
        script = tmp_path / "check.py"
        script.write_text("import signal, instrument; instrument.count('x'); "
                          "print(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        env["INSTRUMENT_EXPORTERS"] = "memory"
        result = subprocess.run([sys.executable, "-m", "instrument", "run", "--", sys.executable, str(script)],
                                env=env, capture_output=True, text=True, timeout=60,
                                preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
        assert (0, "True\n") == (result.returncode, result.stdout)

    def test_without_instrument_run_nothing_is_installed(self, tmp_path):
        """flush_on_sigterm is off by default: a library user's SIGTERM disposition is untouched."""
        assert (-signal.SIGTERM, "ready\n", 0) == run_service(tmp_path, "plain", launcher=False)


class TestConfigure:
    @pytest.fixture(autouse=True)
    def restore(self):
        previous = signal.getsignal(signal.SIGTERM)
        yield
        instrument.configure(flush_on_sigterm=False)
        signal.signal(signal.SIGTERM, previous)

    def test_flush_on_sigterm_installs_and_removes_the_handler(self):
        instrument.configure(flush_on_sigterm=True)
        assert _signals.installed()
        instrument.configure(flush_on_sigterm=False)
        assert signal.SIG_DFL is signal.getsignal(signal.SIGTERM)

    def test_a_handler_installed_before_is_never_replaced(self):
        def own(signum, frame):
            """The program's handler."""

        signal.signal(signal.SIGTERM, own)
        instrument.configure(flush_on_sigterm=True)
        assert own is signal.getsignal(signal.SIGTERM)
        instrument.configure(flush_on_sigterm=False)
        assert own is signal.getsignal(signal.SIGTERM)

    @pytest.mark.parametrize("own_handler", [False, True], ids=["default", "program's handler"])
    def test_starting_on_another_thread_warns_only_where_the_handler_would_go(self, caplog, own_handler):
        """Started by a first record on another thread (gunicorn's control thread, say), instrument
        cannot install the handler: it says so when SIGTERM has its default disposition, and
        stays quiet when the program has a handler of its own, which would have won anyway."""
        def own(signum, frame):
            """The program's handler."""

        if own_handler:
            signal.signal(signal.SIGTERM, own)
        _signals.apply(False)
        _log.forget("sigterm-thread")  # warned once per process: perhaps by an earlier test
        caplog.set_level("WARNING", logger="instrument")
        thread = threading.Thread(target=_signals.apply, args=(True,))
        thread.start()
        thread.join()
        warned = [r for r in caplog.records if "flush_on_sigterm is set" in r.getMessage()]
        assert (0 if own_handler else 1) == len(warned)
        assert (own if own_handler else signal.SIG_DFL) is signal.getsignal(signal.SIGTERM)

    def test_only_the_main_thread_can_ask_for_it(self):
        """Python lets only the main thread set handlers: configure() says so from another."""
        raised = []

        def configure():
            try:
                instrument.configure(flush_on_sigterm=True)
            except ConfigurationError as exc:
                raised.append(str(exc))

        thread = threading.Thread(target=configure)
        thread.start()
        thread.join()
        assert ["configure(flush_on_sigterm=True) must be called from the main thread: Python lets only the "
                "main thread handle signals"] == raised
        assert signal.SIG_DFL is signal.getsignal(signal.SIGTERM)


INTERRUPTED_CUT = textwrap.dedent("""
    import os, signal, sys, threading
    import instrument
    from instrument._pipeline import PIPELINE

    instrument.configure(flush_on_sigterm=True)
    instrument.count("signals.work", 5000)
    if sys.argv[1] == "inside":
        # The signal lands while this (the main) thread is cutting the batch that holds the records.
        PIPELINE.add_listener(lambda batch: os.kill(os.getpid(), signal.SIGTERM))
    else:
        # The signal lands while this thread waits for another thread's cut to end.
        inside, go_on = threading.Event(), threading.Event()

        def hold_the_cut(batch):
            if threading.current_thread() is not threading.main_thread():
                inside.set()
                go_on.wait(10)

        PIPELINE.add_listener(hold_the_cut)
        threading.Thread(target=instrument.flush).start()
        inside.wait(10)
        threading.Timer(0.2, lambda: (os.kill(os.getpid(), signal.SIGTERM), go_on.set())).start()
    instrument.flush(10)
    print("the program went on", flush=True)
""")


@pytest.mark.parametrize("moment", ["inside", "waiting"])
def test_a_sigterm_that_lands_during_a_cut_on_the_main_thread_waits_for_the_cut(tmp_path, moment):
    """Signal handlers run on the main thread, which may be cutting a batch itself (a server
    flushing as it stops while its parent terminates it): the handler lets that cut end, exports
    it, then ends the process; the records in that batch are not lost."""
    script = tmp_path / "cut.py"
    script.write_text(INTERRUPTED_CUT)
    out = tmp_path / "cut.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    env.update(INSTRUMENT_EXPORTERS="jsonl", INSTRUMENT_JSONL_PATH=str(out), INSTRUMENT_INTERVAL="3600")
    result = subprocess.run([sys.executable, str(script), moment], env=env, capture_output=True, text=True,
                            timeout=60)
    exported = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    assert (-signal.SIGTERM, "", 5000) == (
        result.returncode, result.stdout, sum(p["value"] for p in exported if p["name"] == "signals.work")
    ), result.stderr

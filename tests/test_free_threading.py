"""Free-threaded CPython (3.13t): instrument never turns the GIL back on.

A free-threaded interpreter re-enables the GIL, for the whole process and with only a
warning, when it loads an extension module that has not declared it can run without it.
These tests run in a fresh interpreter each, because whatever imported the GIL back in an
earlier test would stay. They run on free-threaded builds (tox's ``py313t``) and skip on
the others.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from instrument.integrations import REGISTRY, Entry

from .helpers import free_port

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
pytestmark = pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded CPython (tox -e py313t)")


def run(code: str) -> dict:
    """Run *code* in a fresh interpreter (the GIL off, as a free-threaded build starts, and
    not forced off: ``-X gil=0`` would hide a module turning it on); it prints one JSON
    line last."""
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "INSTRUMENT_EXPORTERS": ""},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def trigger_modules() -> dict[str, str]:
    """Integration identifier -> the module whose import installs it, for every integration."""
    return {name: entry.modules[0] for name, entry in REGISTRY.items() if isinstance(entry, Entry)}


def libraries_that_keep_the_gil_off() -> tuple[dict[str, str], dict[str, str]]:
    """The integrations' libraries importable here that leave the GIL off when imported
    alone, and those that turn it on themselves (with the reason), e.g. psycopg2 2.9."""
    found = run(
        f"""
        import importlib, json, subprocess, sys
        modules = {trigger_modules()!r}
        keep, turn_on = {{}}, {{}}
        for name, module in modules.items():
            probe = subprocess.run(
                [sys.executable, "-c",
                 f"import sys, {{module}}; print(sys._is_gil_enabled())"],
                capture_output=True, text=True)
            if probe.returncode != 0:
                continue  # not installed here (or not importable outside its server: uwsgi)
            if probe.stdout.strip() == "False":
                keep[name] = module
            else:
                turn_on[name] = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "?"
        print(json.dumps({{"keep": keep, "turn_on": turn_on}}))
        """
    )
    return found["keep"], found["turn_on"]


def test_the_gil_stays_off_with_every_exporter_and_integration():
    """Importing instrument, installing every integration whose library is here (and which
    does not turn the GIL on by itself), starting every exporter and recording through all
    of them leaves the GIL off."""
    keep, turn_on = libraries_that_keep_the_gil_off()
    assert {"sqlite3", "http_client", "requests", "httpx", "urllib3"} <= set(keep)
    prometheus, statsd = free_port(), free_port()
    found = run(
        f"""
        import json, os, sys
        import instrument, instrument.auto
        from instrument.exporters.memory import MemoryExporter
        os.environ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = "http://127.0.0.1:9/v1/metrics"
        instrument.auto.install()
        for module in {sorted(keep.values())!r}:
            __import__(module)
        memory = MemoryExporter()
        instrument.configure(
            exporters=["otlp", "prometheus", "statsd", "dogstatsd", "jsonl", "http", "summary", memory],
            prometheus_address="127.0.0.1:{prometheus}", statsd_address="127.0.0.1:{statsd}",
            http_url="http://127.0.0.1:9/", jsonl_path=os.devnull, exit_timeout=0.5,
        )

        @instrument.timed("ft.timed")
        def work():
            return 1

        for _ in range(1000):
            work()
            instrument.count("ft.count", tags={{"k": "v"}})
            instrument.record("ft.record", 2.5)
        instrument.gauge("ft.gauge", 3)
        import sqlite3
        sqlite3.connect(":memory:").execute("select 1").fetchall()
        instrument.flush(5.0)
        names = sorted({{p.name for b in memory.batches for p in b.points}})
        print(json.dumps({{"gil": sys._is_gil_enabled(), "installed": instrument.auto.installed(),
                          "names": names}}))
        """
    )
    assert found["gil"] is False, f"the GIL was turned on; libraries that turn it on alone: {turn_on}"
    assert set(keep) <= set(found["installed"])
    assert {"ft.timed", "ft.count", "ft.record", "ft.gauge", "db.client.operation.duration"} <= set(found["names"])

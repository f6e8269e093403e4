"""`instrument run -- PROGRAM`: the program runs as itself, instrumented, with the default exporters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from instrument._cli import _parser, _run_environment
from instrument._config import OPTIONS, ConfigurationError
from instrument._process import is_runtime_metric


def instrument_run(args, cwd, env=None, **kwargs):
    base = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    return subprocess.run(
        [sys.executable, "-m", "instrument", "run", *args],
        cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60, **kwargs,
    )


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def app(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import sys, instrument
        @instrument.timed("app.work")
        def work():
            return sum(range(100))
        for _ in range(25):
            work()
        print("app output")
        sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """))
    return script


def test_default_exporters_write_jsonl_and_print_a_summary(app, tmp_path):
    result = instrument_run(["--", sys.executable, str(app)], tmp_path)
    assert 0 == result.returncode, result.stderr
    assert "app output" == result.stdout.strip()
    assert "instrument summary" in result.stderr
    row = next(line for line in result.stderr.splitlines() if line.startswith("app.work"))
    assert "25" == row.split()[1]
    lines = jsonl(tmp_path / "instrument-metrics.jsonl")
    assert 25 == sum(line["count"] for line in lines if line["name"] == "app.work")


def test_exit_status_and_stdin_are_the_programs(app, tmp_path):
    assert 3 == instrument_run(["--", sys.executable, str(app), "3"], tmp_path).returncode
    echoed = instrument_run(["--", sys.executable, "-c", "print(input()[::-1])"], tmp_path, input="abc\n")
    assert "cba" == echoed.stdout.strip()


def test_options_become_variables_that_children_inherit(tmp_path):
    """A Python subprocess started by the program is instrumented the same way: its sqlite3
    calls are measured although it never imports instrument itself."""
    out = tmp_path / "both.jsonl"
    child = "import sqlite3; sqlite3.connect(':memory:').execute('SELECT 1')"
    parent = (
        "import subprocess, sys, instrument\n"
        "instrument.count('cli.parent')\n"
        f"subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
    )
    result = instrument_run(
        ["--exporter", "jsonl", "--interval", "60", "--", sys.executable, "-c", parent],
        tmp_path, {"INSTRUMENT_JSONL_PATH": str(out)},
    )
    assert 0 == result.returncode, result.stderr
    assert "instrument summary" not in result.stderr  # only the exporter asked for
    names = [line["name"] for line in jsonl(out)
             if not line["name"].startswith("instrument.") and not is_runtime_metric(line["name"])]
    assert ["cli.parent", "db.client.operation.duration"] == sorted(names)


class TestRunOptions:
    @pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
    def test_every_option_is_a_flag(self, option):
        """Each declared option is `instrument run --NAME VALUE`, named after it (dashes for underscores)."""
        args = _parser().parse_args(["run", f"--{option.name.replace('_', '-')}", "x", "--", "app"])
        assert "x" == vars(args)[f"option_{option.name}"]

    def test_a_flag_sets_its_variable(self):
        """--NAME VALUE becomes INSTRUMENT_NAME=VALUE; --exporter adds to --exporters."""
        args = _parser().parse_args([
            "run", "--prometheus-address", "127.0.0.1:9500", "--runtime-metrics", "false",
            "--exporters", "jsonl", "--exporter", "prometheus", "--", "app",
        ])
        env = _run_environment(args, {})
        assert ("127.0.0.1:9500", "false", "jsonl,prometheus") == (
            env["INSTRUMENT_PROMETHEUS_ADDRESS"], env["INSTRUMENT_RUNTIME_METRICS"], env["INSTRUMENT_EXPORTERS"]
        )

    def test_a_bad_value_names_the_variable(self, tmp_path):
        """A malformed value stops instrument run before the program starts, naming the option's variable."""
        with pytest.raises(ConfigurationError, match="INSTRUMENT_LIVE_INTERVAL is 'soon'"):
            _run_environment(_parser().parse_args(["run", "--live-interval", "soon", "--", "app"]), {})
        result = instrument_run(["--prometheus-native-max-buckets", "-3", "--", sys.executable, "-c", "pass"], tmp_path)
        assert (2, "instrument run: INSTRUMENT_PROMETHEUS_NATIVE_MAX_BUCKETS is '-3'") == (
            result.returncode, result.stderr.split(";")[0]
        )


def test_application_sitecustomize_runs_once_after_ours(tmp_path):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(
        "import sys\nprint('app sitecustomize', 'instrument' in sys.modules, flush=True)\n"
    )
    result = instrument_run(["--", sys.executable, "-c", "print('main')"], tmp_path, {"PYTHONPATH": str(site_dir)})
    assert 0 == result.returncode, result.stderr
    # The launcher is itself a Python process (without instrument's hook) before it
    # execs the program: the "False" line is its start-up, the "True" line the program's.
    assert ["app sitecustomize False", "app sitecustomize True", "main"] == result.stdout.splitlines()


def test_program_not_found(tmp_path):
    result = instrument_run(["--", "no-such-program-xyz"], tmp_path)
    assert 127 == result.returncode
    assert "program 'no-such-program-xyz' not found" in result.stderr


def test_unknown_exporter_is_refused_before_starting(tmp_path):
    result = instrument_run(["--exporter", "nope", "--", sys.executable, "-c", "print('ran')"], tmp_path)
    assert 2 == result.returncode
    assert "unknown exporter 'nope'" in result.stderr
    assert "ran" not in result.stdout


def test_malformed_variable_is_reported_without_starting(tmp_path):
    """The launcher checks INSTRUMENT_* itself: one clean message, exit status 2, no traceback."""
    result = instrument_run(["--", sys.executable, "-c", "print('ran')"], tmp_path, {"INSTRUMENT_INTERVAL": "soon"})
    assert 2 == result.returncode
    assert "instrument run: INSTRUMENT_INTERVAL is 'soon'; it must be a number of seconds\n" == result.stderr
    assert "" == result.stdout


def test_missing_program_is_a_usage_error(tmp_path):
    result = instrument_run([], tmp_path)
    assert 2 == result.returncode
    assert "run needs a program" in result.stderr


def test_console_script_is_installed():
    """`pip install` puts the `instrument` command next to the interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "instrument")
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert 0 == result.returncode
    assert "run" in result.stdout


def test_program_not_executable(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(0o644)
    result = instrument_run(["--", str(script)], tmp_path)
    assert 126 == result.returncode
    assert f"program {str(script)!r} is not executable" in result.stderr
    assert "never" not in result.stdout


def test_signals_are_the_programs(tmp_path):
    """exec, not a child: a program killed by a signal leaves the launcher's caller that status."""
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    result = instrument_run(["--", sys.executable, "-c", code], tmp_path)
    assert -signal.SIGTERM == result.returncode


def test_a_setup_error_leaves_the_program_and_its_sitecustomize_running(tmp_path):
    """A child the program starts with a malformed INSTRUMENT_* variable is not instrumented:
    one message, then its own sitecustomize and the child itself run as usual."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text("print('app sitecustomize', flush=True)\n")
    program = (
        "import os, subprocess, sys\n"
        "env = dict(os.environ, INSTRUMENT_INTERVAL='soon')\n"
        "subprocess.run([sys.executable, '-c', 'print(\\'child ran\\')'], env=env, check=True)\n"
    )
    result = instrument_run(["--", sys.executable, "-c", program], tmp_path, {"PYTHONPATH": str(site_dir)})
    assert 0 == result.returncode, result.stderr
    # The launcher and the program print the first two lines; the child the last two.
    assert ["app sitecustomize"] * 3 + ["child ran"] == result.stdout.splitlines()
    messages = [line for line in result.stderr.splitlines() if "not instrumenting this process" in line]
    assert 1 == len(messages) and "INSTRUMENT_INTERVAL" in messages[0], result.stderr

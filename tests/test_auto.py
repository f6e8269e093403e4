"""Automatic instrumentation: the integration registry, and `instrument run` instrumenting programs
that import their libraries before or after start-up (the post-import hooks: test_importhook)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

import instrument.auto
from instrument._process import RUNTIME_METRICS
from instrument.integrations import REGISTRY, Integration, load, parse_version

from .integrations.http_server import Server


class Toy(Integration):
    identifier = "toy"
    distribution = "toy-lib"
    min_version = (2, 0)

    def setup(self, module):
        self.patch(module, "greet", lambda original: lambda: original() + "!")


class TestIntegrationBase:
    def test_install_patches_once_and_uninstall_restores(self):
        module = types.ModuleType("toy_lib")
        module.__version__ = "2.1"
        module.greet = lambda: "hi"
        original = module.greet
        toy = Toy()
        assert toy.install(module)
        assert toy.install(module)  # idempotent
        assert "hi!" == module.greet()
        assert original is module.greet.__instrument_original__
        toy.uninstall()
        assert module.greet is original

    def test_too_old_library_is_skipped_with_one_warning(self, caplog):
        module = types.ModuleType("toy_lib_old")
        module.__version__ = "1.9.9"
        module.greet = lambda: "hi"
        toy = Toy()
        assert not toy.install(module)
        assert not toy.install(module)
        assert "hi" == module.greet()
        warnings = [r.getMessage() for r in caplog.records if "needs toy-lib >= 2.0, found 1.9.9" in r.getMessage()]
        assert 1 == len(warnings)

    def test_patching_an_inherited_method_removes_the_override_on_uninstall(self):
        class Base:
            def hello(self):
                return "base"

        class Child(Base):
            pass

        toy = Toy()
        toy.patch(Child, "hello", lambda original: lambda self: "patched")
        assert "patched" == Child().hello()
        toy.uninstall()
        assert "hello" not in vars(Child)
        assert "base" == Child().hello()

    def test_a_failing_trigger_module_keeps_the_others_patches(self):
        """An integration hooking several libraries undoes only the one whose setup failed."""

        class TwoLibraries(Integration):
            identifier = "two"

            def setup(self, module):
                self.patch(module, "greet", lambda original: lambda: "patched")
                if module.__name__ == "broken_lib":
                    raise RuntimeError("cannot hook this one")

        good, broken = types.ModuleType("good_lib"), types.ModuleType("broken_lib")
        good.greet = broken.greet = lambda: "original"
        two = TwoLibraries()
        assert two.install(good)
        with pytest.raises(RuntimeError):
            two.install(broken)
        assert ("patched", "original") == (good.greet(), broken.greet())
        two.uninstall()
        assert "original" == good.greet()

    @pytest.mark.parametrize(("text", "version"), [("2.31.0", (2, 31, 0)), ("1.26.20rc1", (1, 26, 20)),
                                                   ("3.0.0.dev0", (3, 0, 0)), ("x", ())])
    def test_parse_version(self, text, version):
        assert version == parse_version(text)


class TestInstallApi:
    def test_unknown_names_are_refused_with_the_known_ones(self):
        with pytest.raises(ValueError, match="unknown integration\\(s\\) 'mongo' in include; known integrations: "):
            instrument.auto.install(include=["mongo"])
        with pytest.raises(TypeError, match="list of integration names"):
            instrument.auto.install(exclude="sqlite3")

    def test_available_lists_the_registry(self):
        assert sorted(REGISTRY) == instrument.auto.available()
        for required in ("http_client", "requests", "sqlite3", "urllib3", "wsgi", "psycopg", "psycopg2", "pymysql"):
            assert required in REGISTRY

    def test_exclude_and_disabled_integrations_are_left_out(self):
        instrument.configure(disabled_integrations=["urllib3"])
        try:
            chosen = instrument.auto.install(include=["sqlite3", "urllib3", "requests"], exclude=["requests"])
        finally:
            instrument.configure(disabled_integrations=[])
            instrument.auto.uninstall(["sqlite3"])
        assert ["sqlite3"] == chosen

    def test_a_group_stands_for_its_members(self):
        """``wsgi`` names every WSGI server and framework integration, in include, exclude and
        disabled_integrations; one member can be left out alone."""
        wsgi = [name for name in REGISTRY if name.startswith("wsgi.")]
        assert sorted(wsgi) == sorted(REGISTRY["wsgi"].members)
        instrument.configure(disabled_integrations=["wsgi.flask"])
        try:
            chosen = instrument.auto.install(include=["wsgi", "sqlite3"], exclude=["wsgi.django"])
            assert ["sqlite3"] == instrument.auto.install(include=["sqlite3"], exclude=["wsgi"])
        finally:
            instrument.configure(disabled_integrations=[])
            instrument.auto.uninstall(["wsgi", "sqlite3"])
        assert sorted({*wsgi, "sqlite3"} - {"wsgi.flask", "wsgi.django"}) == chosen
        assert [] == [name for name in instrument.auto.installed() if name.startswith("wsgi")]

    def test_every_entry_names_an_integration_with_that_identifier(self):
        """The registry, the classes' identifiers and their minimum versions agree (nothing is imported
        but instrument's own modules)."""
        from instrument.integrations import Entry, load

        for name, entry in REGISTRY.items():
            if isinstance(entry, Entry):
                assert name == load(name).identifier

    def test_disabled_integrations_variable_is_checked(self):
        from instrument._config import ConfigurationError, from_environ

        with pytest.raises(ConfigurationError, match="INSTRUMENT_DISABLED_INTEGRATIONS: unknown integration"):
            from_environ({"INSTRUMENT_DISABLED_INTEGRATIONS": "sqlite3,nosuch"})
        assert ("wsgi", "wsgi.flask") == from_environ({"INSTRUMENT_DISABLED_INTEGRATIONS": "wsgi,wsgi.flask"})[
            "disabled_integrations"]


# --- end to end, under `instrument run` -------------------------------------------


def run(args, cwd, env=None, timeout=60):
    base = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    return subprocess.run([sys.executable, "-m", "instrument", "run", *args], cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def exported_names(path):
    if not path.exists():
        return []
    return sorted({json.loads(line)["name"] for line in path.read_text().splitlines()} - {
        "instrument.records.dropped", "instrument.export.batches", "instrument.export.duration", *RUNTIME_METRICS})


@pytest.fixture(scope="module")
def server():
    running = Server()
    yield running
    running.close()


APP = """
import sys
print("started", "sqlite3" in sys.modules, "requests" in sys.modules, flush=True)
import sqlite3, requests
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (x)")
conn.execute("INSERT INTO t VALUES (1)")
assert requests.get(sys.argv[1], timeout=5).status_code == 200
print("done", flush=True)
"""


class TestInstrumentRun:
    def test_libraries_imported_after_start_up_are_instrumented(self, tmp_path, server):
        out = tmp_path / "m.jsonl"
        (tmp_path / "app.py").write_text(APP)
        result = run(["--exporter", "jsonl", "--", sys.executable, "app.py", server.url("/ok")], tmp_path,
                     {"INSTRUMENT_JSONL_PATH": str(out)})
        assert 0 == result.returncode, result.stderr
        assert ["started False False", "done"] == result.stdout.splitlines()
        assert ["db.client.operation.duration", "http.client.request.duration"] == exported_names(out)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        ops = sorted(line["tags"]["db.operation.name"] for line in lines if line["name"].startswith("db."))
        assert ["CREATE", "INSERT"] == ops
        http = [line for line in lines if line["name"].startswith("http.")]
        assert [("GET", 200, 1)] == [(h["tags"]["http.request.method"], h["tags"]["http.response.status_code"],
                                      h["count"]) for h in http]

    def test_disable_leaves_an_integration_out(self, tmp_path, server):
        out = tmp_path / "m.jsonl"
        (tmp_path / "app.py").write_text(APP)
        result = run(["--exporter", "jsonl", "--disable", "sqlite3", "--", sys.executable, "app.py",
                      server.url("/ok")], tmp_path, {"INSTRUMENT_JSONL_PATH": str(out)})
        assert 0 == result.returncode, result.stderr
        assert ["http.client.request.duration"] == exported_names(out)

    def test_kill_switch_instruments_nothing_but_runs_the_apps_sitecustomize(self, tmp_path, server):
        out = tmp_path / "m.jsonl"
        (tmp_path / "app.py").write_text(APP)
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            "import os\nif os.environ.get('X_MARK'): print('app site', flush=True)\n"
        )
        result = run(["--exporter", "jsonl", "--", sys.executable, "app.py", server.url("/ok")], tmp_path,
                     {"INSTRUMENT_JSONL_PATH": str(out), "INSTRUMENT_ENABLED": "false", "PYTHONPATH": str(site),
                      "X_MARK": "1"})
        assert 0 == result.returncode, result.stderr
        # once in the launcher's own interpreter, once in the program's
        assert ["app site", "app site", "started False False", "done"] == result.stdout.splitlines()
        assert [] == exported_names(out)

    def test_too_old_library_is_skipped_and_the_program_runs(self, tmp_path):
        """A requests older than supported: one warning, no patch, the program is unaffected."""
        lib = tmp_path / "lib"
        (lib / "requests").mkdir(parents=True)
        (lib / "requests" / "__init__.py").write_text("__version__ = '1.2.0'\ndef get(url):\n    return 'old'\n")
        dist = lib / "requests-1.2.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: requests\nVersion: 1.2.0\n")
        out = tmp_path / "m.jsonl"
        result = run(["--exporter", "jsonl", "--", sys.executable, "-c", "import requests; print(requests.get('x'))"],
                     tmp_path, {"INSTRUMENT_JSONL_PATH": str(out), "PYTHONPATH": str(lib)})
        assert 0 == result.returncode, result.stderr
        assert "old" == result.stdout.strip()
        floor = ".".join(map(str, load("requests").min_version))
        assert f"integration 'requests' needs requests >= {floor}, found 1.2.0; not installed" in result.stderr
        assert 1 == result.stderr.count("needs requests")

    def test_missing_library_costs_nothing(self, tmp_path):
        """Integrations of libraries the program never imports import nothing."""
        code = "import sys; print(sorted(m for m in ('requests', 'urllib3', 'psycopg', 'wrapt', 'sqlite3') " \
               "if m in sys.modules))"
        result = run(["--", sys.executable, "-c", code], tmp_path)
        assert 0 == result.returncode, result.stderr
        assert "[]" == result.stdout.strip()

    def test_set_up_error_runs_the_program_uninstrumented(self, tmp_path):
        """A broken integration is reported once; the program still runs and exits normally."""
        lib = tmp_path / "lib"
        (lib / "sqlite3").mkdir(parents=True)
        (lib / "sqlite3" / "__init__.py").write_text("# a sqlite3 without connect()\n")
        result = run(["--", sys.executable, "-c", "import sqlite3; print('fine')"], tmp_path,
                     {"PYTHONPATH": str(lib)})
        assert 0 == result.returncode, result.stderr
        assert "fine" == result.stdout.strip()
        assert "integration 'sqlite3' failed to install; sqlite3 runs uninstrumented" in result.stderr

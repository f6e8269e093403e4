"""Post-import hooks: run once a module is imported, before or after, without touching what the
module sees; modules imported by another thread, or created without an import, included."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest

from instrument import _importhook


class TestPostImportHooks:
    def test_hook_runs_after_a_later_import(self, tmp_path, monkeypatch):
        (tmp_path / "late_library.py").write_text("VALUE = 41\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        seen = []
        _importhook.when_imported("late_library", lambda m: seen.append(m.VALUE + 1))
        assert [] == seen
        import late_library  # noqa: F401

        assert [42] == seen
        assert "late_library" not in _importhook.pending()

    def test_hook_runs_at_once_for_an_imported_module(self):
        seen = []
        _importhook.when_imported("json", lambda m: seen.append(m.__name__))
        assert ["json"] == seen

    def test_loader_and_spec_are_the_real_ones(self, tmp_path, monkeypatch):
        """Code inspecting __loader__ or __spec__.loader sees nothing of the hook."""
        (tmp_path / "inspected_library.py").write_text("import sys\nLOADER = __loader__\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        _importhook.when_imported("inspected_library", lambda m: None)
        import inspected_library

        assert type(inspected_library.LOADER).__name__ == "SourceFileLoader"
        assert inspected_library.__spec__.loader is inspected_library.__loader__

    def test_a_failing_hook_never_breaks_the_import(self, tmp_path, monkeypatch, caplog):
        (tmp_path / "fragile_library.py").write_text("OK = True\n")
        monkeypatch.syspath_prepend(str(tmp_path))

        def broken(module):
            raise RuntimeError("hook bug")

        _importhook.when_imported("fragile_library", broken)
        import fragile_library

        assert fragile_library.OK
        assert any("fragile_library" in r.getMessage() for r in caplog.records)

    def test_discarded_hooks_do_not_run(self, tmp_path, monkeypatch):
        (tmp_path / "never_hooked.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        seen = []
        hook = seen.append
        _importhook.when_imported("never_hooked", hook)
        _importhook.discard("never_hooked", hook)
        import never_hooked  # noqa: F401

        assert [] == seen


class TestImportRaces:
    def test_hook_registered_while_another_thread_imports_the_module(self, tmp_path, monkeypatch):
        """The import under way uses the real loader; the hook still runs once it completes."""
        import threading
        import time

        (tmp_path / "slow_import_mod.py").write_text("import time\ntime.sleep(0.3)\nVALUE = 1\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        ran = []
        importer = threading.Thread(target=__import__, args=("slow_import_mod",))
        importer.start()
        time.sleep(0.1)
        _importhook.when_imported("slow_import_mod", lambda m: ran.append(m.VALUE))
        importer.join()
        deadline = time.monotonic() + 5
        while not ran and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [1] == ran

    def test_a_private_copy_does_not_consume_the_hooks(self, tmp_path, monkeypatch):
        """module_from_spec + exec_module without sys.modules: the real import still runs hooks."""
        import importlib.util

        (tmp_path / "copied_mod.py").write_text("VALUE = 2\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        ran = []
        _importhook.when_imported("copied_mod", lambda m: ran.append(m))
        spec = importlib.util.find_spec("copied_mod")
        copy = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(copy)
        assert [] == ran
        import copied_mod

        assert [copied_mod] == ran


@pytest.fixture
def fresh_hooks(monkeypatch):
    """The hooks' awaited modules and thread state, fresh, restored afterwards."""
    monkeypatch.setattr(_importhook, "_created", {})
    monkeypatch.setattr(_importhook, "_threads_held", False)


class TestCreatedWithoutImport:
    def test_hooks_run_at_the_first_import_once_it_is_ready(self, fresh_hooks, tmp_path, monkeypatch):
        """A module its host creates (uwsgi's): every hook for it runs at the next import after it is ready,
        before that import goes on, so a hook may watch the very module being imported."""
        (tmp_path / "created_host_app.py").write_text("VALUE = 3\n")
        (tmp_path / "created_probe.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        seen = []
        _importhook.when_imported("created_host", lambda m: seen.append("integration"))
        _importhook.when_created("created_host", lambda m: _importhook.when_imported(
            "created_host_app", lambda app: seen.append(app.VALUE)), ready=lambda m: hasattr(m, "ready"))
        host = types.ModuleType("created_host")
        monkeypatch.setitem(sys.modules, "created_host", host)
        try:
            import created_probe  # noqa: F401  (an import while the module is not ready: nothing runs)
        finally:
            sys.modules.pop("created_probe", None)
        assert [] == seen
        host.ready = True
        try:
            import created_host_app  # noqa: F401
        finally:
            sys.modules.pop("created_host_app", None)
        assert ["integration", 3] == seen
        assert "created_host" not in _importhook.pending()

    def test_runs_at_once_when_ready_already(self, fresh_hooks, monkeypatch):
        monkeypatch.setitem(sys.modules, "created_ready", types.ModuleType("created_ready"))
        seen = []
        _importhook.when_created("created_ready", seen.append, ready=lambda m: True)
        assert [sys.modules["created_ready"]] == seen


class TestThreadsHeld:
    def test_no_polling_thread_while_held_the_next_import_checks_instead(self, fresh_hooks, tmp_path, monkeypatch):
        """Held (a uwsgi master before its fork): a module another thread imports is checked at each
        import, with no thread of ours; released, polling resumes."""
        (tmp_path / "held_slow_mod.py").write_text("import time\ntime.sleep(0.3)\nVALUE = 1\n")
        (tmp_path / "held_probe.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        _importhook.hold_threads()
        ran = []
        importer = threading.Thread(target=__import__, args=("held_slow_mod",))
        importer.start()
        time.sleep(0.1)
        _importhook.when_imported("held_slow_mod", lambda m: ran.append(m.VALUE))
        assert "instrument-import-watch" not in [t.name for t in threading.enumerate()]
        importer.join()
        assert [] == ran
        try:
            import held_probe  # noqa: F401
        finally:
            sys.modules.pop("held_probe", None)
        assert [1] == ran
        _importhook.release_threads()

    def test_the_polling_thread_blocks_the_programs_signals(self, fresh_hooks, tmp_path, monkeypatch):
        """Like every thread of instrument's, the polling thread never takes a signal sent to the process."""
        import signal

        from .test_threads import blocked_signals

        (tmp_path / "signal_slow_mod.py").write_text("import time\ntime.sleep(0.3)\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        importer = threading.Thread(target=__import__, args=("signal_slow_mod",))
        importer.start()
        time.sleep(0.1)
        _importhook.when_imported("signal_slow_mod", lambda m: None)
        polling = [t for t in threading.enumerate() if t.name == "instrument-import-watch"]
        try:
            assert polling
            assert {signal.SIGTERM, signal.SIGINT, signal.SIGHUP} <= blocked_signals(polling[0])
        finally:
            importer.join()

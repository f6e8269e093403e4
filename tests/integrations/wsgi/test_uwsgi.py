"""uwsgi's integration without uwsgi: a fake ``uwsgi`` module for the options it reads, its fork
and exit hooks, and how instrument finds it (the real server: test_servers.TestUwsgi)."""

from __future__ import annotations

import logging
import os
import sys
import types

import pytest

from instrument import _importhook
from instrument.integrations.wsgi import uwsgi


def fake_uwsgi(**attributes):
    module = types.ModuleType("uwsgi")
    module.opt = {}
    module.has_threads = 1
    module.worker_id = lambda: 0  # the master, loading the application
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


@pytest.fixture
def uwsgi_state(monkeypatch):
    """The uwsgi module's process state, fresh, in a runtime as fresh as a master that recorded
    nothing yet; the import hooks' state (threads held, modules awaited) restored afterwards."""
    from instrument._runtime import RUNTIME
    from instrument.testing import reset

    reset()
    for name, value in [("_origin", None), ("_prepared", False), ("_reset_in", None)]:
        monkeypatch.setattr(uwsgi, name, value)
    monkeypatch.setattr(_importhook, "_threads_held", False)
    monkeypatch.setattr(_importhook, "_created", {})
    monkeypatch.delitem(sys.modules, "uwsgi", raising=False)
    resets = []
    monkeypatch.setattr(uwsgi, "_flush_at_exit", lambda: resets.append("flush"))
    monkeypatch.setattr("instrument._pipeline.PIPELINE.after_fork_in_child", lambda: resets.append("reset"))
    monkeypatch.setattr(uwsgi, "_guard_stop_signals", lambda: None)  # a worker's signal guard: not here
    yield resets
    RUNTIME.release()
    reset()


class TestUwsgiHooks:
    def test_applications_from_options(self):
        """--module/--wsgi/--mount name the modules whose callables get wrapped, factories included."""
        module = fake_uwsgi(opt={"module": b"app", "wsgi": [b"pkg.web:make_app()"], "callable": b"api",
                                 "mount": b"/admin=admin.site:wsgi", "wsgi-file": b"/srv/x.py"})
        assert [("app", "api", False), ("pkg.web", "make_app", True), ("admin.site", "wsgi", False)] == \
            uwsgi.applications(module)

    def test_threads_held_in_master_released_in_worker(self, uwsgi_state, monkeypatch):
        """The master starts no thread; a forked worker resets its pipeline once and starts its own."""
        from instrument._runtime import RUNTIME

        started = []
        monkeypatch.setattr(RUNTIME.pipeline, "ensure_started", lambda: started.append(os.getpid()))
        monkeypatch.setattr(uwsgi, "_guard_stop_signals", lambda: started.append("guarded"))
        uwsgi.prepare(fake_uwsgi())
        RUNTIME.ensure_started()  # the first record, in the master: held
        assert ([], True) == (started, RUNTIME.held)
        monkeypatch.setattr(uwsgi, "_origin", -1)  # as seen from a worker forked from it
        RUNTIME.ensure_started()  # a worker whose post-fork hook did not run
        uwsgi.after_fork()  # its post-fork hook, late: nothing more to do
        assert ["reset"] == uwsgi_state
        assert ["guarded", os.getpid()] == started
        assert not RUNTIME.held

    def test_post_fork_and_atexit_hooks_chain(self, uwsgi_state):
        """Existing post_fork_hook and atexit run too, after our reset and before our flush."""
        module = fake_uwsgi(post_fork_hook=lambda: uwsgi_state.append("theirs"),
                            atexit=lambda: uwsgi_state.append("exit"))
        uwsgi.prepare(module)
        uwsgi._origin = -1  # the hooks run in a forked worker
        module.post_fork_hook()
        module.atexit()
        assert ["reset", "theirs", "exit", "flush"] == uwsgi_state

    def test_post_fork_joins_uwsgidecorators_chain(self, uwsgi_state, monkeypatch):
        """With uwsgidecorators imported, the reset goes first in its postfork chain."""
        decorators = types.ModuleType("uwsgidecorators")
        decorators.postfork_chain = [print]
        monkeypatch.setitem(sys.modules, "uwsgidecorators", decorators)
        uwsgi.prepare(fake_uwsgi())
        assert [uwsgi.after_fork, print] == decorators.postfork_chain

    def test_warns_once_without_threads(self, uwsgi_state, caplog):
        """uwsgi without threads (older releases): one warning naming the option to add."""
        with caplog.at_level(logging.WARNING, logger="instrument"):
            uwsgi.prepare(fake_uwsgi(has_threads=0))
        assert 1 == sum("--enable-threads" in r.getMessage() for r in caplog.records)

    def test_warns_about_skip_atexit(self, uwsgi_state, caplog):
        """--skip-atexit loses the last interval of a worker stopped by a signal: said once."""
        with caplog.at_level(logging.WARNING, logger="instrument"):
            uwsgi.prepare(fake_uwsgi(opt={"skip-atexit": True}))
        assert 1 == sum("--skip-atexit" in r.getMessage() for r in caplog.records)

    def test_prepared_once_however_it_is_found(self, uwsgi_state):
        """Found by the start-up watch, then by the integration: uwsgi's hooks are chained once."""
        module = fake_uwsgi(post_fork_hook=lambda: uwsgi_state.append("theirs"))
        uwsgi.prepare(module)
        chained = module.post_fork_hook
        uwsgi.prepare(module)
        uwsgi.UwsgiIntegration().install(module)
        assert chained is module.post_fork_hook
        uwsgi._origin = -1  # the hook runs in a forked worker
        module.post_fork_hook()
        assert ["reset", "theirs"] == uwsgi_state


class TestFindingUwsgi:
    def test_found_at_the_first_import_after_it_appears(self, uwsgi_state, tmp_path, monkeypatch):
        """uwsgi's module appears without an import: the next import prepares uwsgi and runs the
        integration, which wraps the application in the very module being imported."""
        (tmp_path / "uwsgi_found_app.py").write_text("def application(environ, start_response):\n    return []\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        integration = uwsgi.UwsgiIntegration()
        _importhook.when_imported("uwsgi", integration.install)  # what instrument.auto.install() does
        uwsgi.watch()
        module = fake_uwsgi(opt={"module": b"uwsgi_found_app"})
        monkeypatch.setitem(sys.modules, "uwsgi", module)
        try:
            import uwsgi_found_app

            assert uwsgi._prepared
            assert "Middleware" == type(uwsgi_found_app.application).__name__
        finally:
            integration.uninstall()
            sys.modules.pop("uwsgi_found_app", None)

    def test_not_before_it_is_filled_in(self, uwsgi_state, tmp_path, monkeypatch):
        """uwsgi fills its module in from C: until it has ``opt``, imports go on and nothing runs."""
        (tmp_path / "uwsgi_early_probe.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        uwsgi.watch()
        monkeypatch.setitem(sys.modules, "uwsgi", types.ModuleType("uwsgi"))
        try:
            import uwsgi_early_probe  # noqa: F401
        finally:
            sys.modules.pop("uwsgi_early_probe", None)
        assert not uwsgi._prepared

"""toxfile.py: tox finds the Pythons pyenv installed without any being activated."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_toxfile():
    spec = importlib.util.spec_from_file_location("toxfile", ROOT / "toxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def pyenv(tmp_path):
    """A pyenv root holding 3.12.0, 3.12.1, 3.13.0, free-threaded 3.13.0t and 3.13.5t, and names
    that are not CPython releases; its shims dir."""
    root = tmp_path / "pyenv"
    for version, minor in (("3.12.0", 12), ("3.12.1", 12), ("3.13.0", 13), ("3.12-dev", 12)):
        executable(root / "versions" / version / "bin" / f"python3.{minor}")
    for version in ("3.13.0t", "3.13.5t"):  # a free-threaded build has both names
        executable(root / "versions" / version / "bin" / "python3.13")
        executable(root / "versions" / version / "bin" / "python3.13t")
    executable(root / "versions" / "pypy3.10-7.3.17" / "bin" / "python3.10")
    executable(root / "shims" / "python3.12")  # a shim: fails unless the version is active
    executable(root / "shims" / "python3.13")
    return root


class TestPyenvPythons:
    def test_the_newest_release_of_each_minor_version(self, pyenv):
        """Each minor version pyenv has contributes its newest release's python3.X, oldest
        minor first, and each free-threaded one its python3.Xt (for tox's py313t)."""
        found = load_toxfile().pyenv_pythons({"PYENV_ROOT": str(pyenv), "PATH": str(pyenv / "shims")})
        expected = [
            str(pyenv / "versions" / v / "bin" / f"python{name}")
            for v, name in (("3.12.1", "3.12"), ("3.13.0", "3.13"), ("3.13.5t", "3.13t"))
        ]
        assert expected == found

    def test_a_version_already_on_path_is_left_to_path(self, pyenv, tmp_path):
        """A python3.12 on PATH (not a pyenv shim) is the one tox finds there; pyenv's is not added."""
        elsewhere = executable(tmp_path / "usr" / "bin" / "python3.12").parent
        path = os.pathsep.join([str(pyenv / "shims"), str(elsewhere)])
        found = load_toxfile().pyenv_pythons({"PYENV_ROOT": str(pyenv), "PATH": path})
        assert [
            str(pyenv / "versions" / "3.13.0" / "bin" / "python3.13"),
            str(pyenv / "versions" / "3.13.5t" / "bin" / "python3.13t"),
        ] == found

    def test_without_pyenv_nothing_is_added(self, tmp_path):
        """No pyenv root: discovery is tox's own."""
        assert [] == load_toxfile().pyenv_pythons({"PYENV_ROOT": str(tmp_path / "none"), "PATH": "/usr/bin"})

    def test_discover_keeps_the_command_line_first(self, pyenv, monkeypatch):
        """Interpreters given with `tox --discover` stay first; pyenv's follow, each once."""
        toxfile = load_toxfile()
        monkeypatch.setenv("PYENV_ROOT", str(pyenv))
        monkeypatch.setenv("PATH", str(pyenv / "shims"))
        given = str(pyenv / "versions" / "3.13.0" / "bin" / "python3.13")
        options = SimpleNamespace(discover=[given])
        toxfile.tox_add_core_config(None, SimpleNamespace(conf=SimpleNamespace(options=options)))
        assert [
            given,
            str(pyenv / "versions" / "3.12.1" / "bin" / "python3.12"),
            str(pyenv / "versions" / "3.13.5t" / "bin" / "python3.13t"),
        ] == options.discover

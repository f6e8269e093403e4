"""tox plugin for this project (tox 4 loads ``toxfile.py`` next to tox.ini): pyenv's Pythons.

pyenv's ``python3.12`` shim runs only a version made active (``pyenv global``, ``local``
or ``shell``); for any other it fails, and tox then skips py312 as "not installed"
although ``pyenv install 3.12`` put it on disk. So that plain ``tox`` runs every Python
version pyenv has, without activating any, each minor version that nothing on PATH
provides (pyenv's shims left aside) adds pyenv's newest release of it to tox's
``--discover`` list: the executables tox tries before searching PATH.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from tox.plugin import impl
except ImportError:  # imported by tests/test_toxfile.py, which run without tox installed

    def impl(function: Any) -> Any:
        return function


RELEASE = re.compile(r"3\.(\d+)\.(\d+)")  # CPython releases: not 3.13.0t, 3.12-dev, pypy3.10-7.3.17 or envs


def pyenv_pythons(environ: Mapping[str, str]) -> list[str]:
    """pyenv's newest ``python3.X`` for each minor version that PATH, without pyenv's shims, lacks."""
    root = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    shims = str(root / "shims")
    path = os.pathsep.join(p for p in environ.get("PATH", "").split(os.pathsep) if p and p.rstrip("/") != shims)
    newest: dict[int, tuple[int, Path]] = {}
    try:
        versions = list((root / "versions").iterdir())
    except OSError:  # no pyenv here
        return []
    for version in versions:
        match = RELEASE.fullmatch(version.name)
        if match is None:
            continue
        minor, patch = int(match.group(1)), int(match.group(2))
        executable = version / "bin" / f"python3.{minor}"
        if os.access(executable, os.X_OK) and patch >= newest.get(minor, (-1, executable))[0]:
            newest[minor] = (patch, executable)
    return [
        str(executable)
        for minor, (_, executable) in sorted(newest.items())
        if shutil.which(f"python3.{minor}", path=path) is None
    ]


@impl
def tox_add_core_config(core_conf: Any, state: Any) -> None:
    """Append pyenv's Pythons to ``--discover`` (after any the command line gave)."""
    options = state.conf.options
    given = list(getattr(options, "discover", None) or [])
    options.discover = given + [p for p in pyenv_pythons(os.environ) if p not in given]

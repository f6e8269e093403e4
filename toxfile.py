"""tox plugin for this project (tox 4 loads ``toxfile.py`` next to tox.ini): pyenv's Pythons.

pyenv's ``python3.12`` shim runs only a version made active (``pyenv global``, ``local``
or ``shell``); for any other it fails, and tox then skips py312 as "not installed"
although ``pyenv install 3.12`` put it on disk. So that plain ``tox`` runs every Python
version pyenv has, without activating any, each minor version that nothing on PATH
provides (pyenv's shims left aside) adds pyenv's newest release of it to tox's
``--discover`` list: the executables tox tries before searching PATH. Free-threaded
builds (``3.13.5t``, whose executable is ``python3.13t``) count as versions of their own,
for the ``py313t`` environment.
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


# CPython releases, free-threaded ("t") or not: not 3.12-dev, pypy3.10-7.3.17 or envs.
RELEASE = re.compile(r"3\.(\d+)\.(\d+)(t?)")


def pyenv_pythons(environ: Mapping[str, str]) -> list[str]:
    """pyenv's newest ``python3.X`` (and ``python3.Xt``) for each minor version (and
    free-threaded minor version) that PATH, without pyenv's shims, lacks."""
    root = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    shims = str(root / "shims")
    path = os.pathsep.join(p for p in environ.get("PATH", "").split(os.pathsep) if p and p.rstrip("/") != shims)
    newest: dict[str, tuple[int, Path]] = {}  # "3.13" or "3.13t" -> (patch, executable)
    try:
        versions = list((root / "versions").iterdir())
    except OSError:  # no pyenv here
        return []
    for version in versions:
        match = RELEASE.fullmatch(version.name)
        if match is None:
            continue
        name, patch = f"3.{match.group(1)}{match.group(3)}", int(match.group(2))
        executable = version / "bin" / f"python{name}"
        if os.access(executable, os.X_OK) and patch >= newest.get(name, (-1, executable))[0]:
            newest[name] = (patch, executable)
    return [
        str(executable)
        for name, (_, executable) in sorted(newest.items(), key=lambda item: _order(item[0]))
        if shutil.which(f"python{name}", path=path) is None
    ]


def _order(name: str) -> tuple[int, bool]:
    """``3.9`` before ``3.13`` before ``3.13t``."""
    return int(name[2:].rstrip("t")), name.endswith("t")


@impl
def tox_add_core_config(core_conf: Any, state: Any) -> None:
    """Append pyenv's Pythons to ``--discover`` (after any the command line gave)."""
    options = state.conf.options
    given = list(getattr(options, "discover", None) or [])
    options.discover = given + [p for p in pyenv_pythons(os.environ) if p not in given]

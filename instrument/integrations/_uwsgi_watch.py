"""At interpreter start-up: is this process uwsgi? If so, prepare for its fork (`wsgi.uwsgi`).

Called by ``instrument run``'s bootstrap in every process it starts, so it costs one
look at the executable's name and imports nothing else unless the answer is yes. uwsgi
makes its ``uwsgi`` module without an import, so no post-import hook would notice it,
and it forks its workers from C, so instrument must start no thread in the process
that forks them: both have to be arranged before the application is loaded.
"""

from __future__ import annotations

import os
import sys


def running_under_uwsgi() -> bool:
    """Whether this interpreter is embedded in the uwsgi binary."""
    names = [sys.executable or ""]
    try:
        names.append(os.readlink("/proc/self/exe"))
    except OSError:
        pass
    return any(os.path.basename(name).startswith("uwsgi") for name in names)


def watch() -> None:
    """Inside uwsgi: hold instrument's threads back and watch for uwsgi's module; else nothing."""
    if running_under_uwsgi():
        from .wsgi import uwsgi

        uwsgi.watch()

"""The integrations' one error policy: a failure of their own is logged once, named, and stops there.

Instrumentation never breaks the program it instruments. When an integration's own code
fails (installing its hooks, or measuring one call), `failed` logs the exception once per
(integration, what failed) on the ``instrument`` logger, with its traceback and what the
program does without it, and the program goes on: a failed install leaves the library as it
was (`Integration.install` undoes its patches), a failed measurement is dropped (the
instrumented call returns or raises exactly as it would have without instrument).

Call it from an ``except Exception:`` block that then carries on; never let the exception
through and never swallow one without it. It costs nothing until something fails.
"""

from __future__ import annotations

from .. import _log


def failed(integration: str | tuple[str, ...], action: str, consequence: str) -> None:
    """Log the exception being handled, once for (*integration*, *action*).

    *integration* is the identifier users pass to ``--disable`` (``"requests"``, ``"wsgi"``),
    or the identifiers sharing the code that failed. The line reads: ``instrument:
    integration 'sqlite3' failed to install; sqlite3 runs uninstrumented``.
    """
    names = (integration,) if isinstance(integration, str) else integration
    if len(names) == 1:
        who = f"integration {names[0]!r}"
    elif names:
        who = "integrations " + ", ".join(repr(name) for name in names)
    else:
        who = "an integration"
    _log.error_once(
        ("integration", names, action), "instrument: %s failed to %s; %s", who, action, consequence, exc_info=True
    )

"""What a stopping process needs from the requests it serves.

* A flush on SIGTERM (`_signals`) waits for the requests whose client has the whole
  response but that the server has not closed yet (`requests_closing`): they are about
  to be recorded, and lost if the process ends first.
* A server that ends a worker from a C signal handler (uwsgi) has its stop signals
  held back for the length of each request (`guard_stop_signals`), so a request is
  recorded and exported before the worker goes.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from ... import _signals

# One entry per request whose whole body went to the server and that is not closed yet:
# `_request.Request` appends one when its body is done and pops one when it is recorded.
CLOSING: deque[None] = deque()


def requests_closing() -> int:
    """Requests whose client has (or is about to have) the whole response, not yet recorded:
    a SIGTERM flush waits for them (`_signals.register_pending`)."""
    return len(CLOSING)


_signals.register_pending(requests_closing)


class Guard(Protocol):
    """Held by the serving thread for the length of each request (see `guard_stop_signals`)."""

    def hold(self) -> None: ...

    def release(self) -> None: ...


stop_guard: Guard | None = None  # read by each request as it starts; set only below


def guard_stop_signals(guard: Guard | None) -> None:
    """Call ``guard.hold()`` as each request starts and ``guard.release()`` once it is recorded.

    Set in uwsgi workers (`uwsgi.StopGuard`), whose stop signals must not end a request
    before it is recorded and exported.
    """
    global stop_guard
    stop_guard = guard

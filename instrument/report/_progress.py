"""How far reading has come, on one line of a terminal, for reads that take a while."""

from __future__ import annotations

import time
from typing import IO

from .._format import format_value

DELAY = 1.0  # seconds of reading before the line shows: small files stay silent
EVERY = 0.2  # seconds between updates


class Progress:
    """Rewrites one line of *stream* (``\\r``, then erase to its end) while a file is read."""

    def __init__(self, stream: IO[str], delay: float = DELAY, every: float = EVERY) -> None:
        self.stream = stream
        self.delay = delay
        self.every = every
        self._started = time.monotonic()
        self._shown = 0.0
        self._label = ""
        self._total: int | None = None
        self._dirty = False

    @staticmethod
    def for_terminal(stream: IO[str]) -> Progress | None:
        """A Progress writing to *stream* when it is a terminal; None (say nothing) otherwise."""
        isatty = getattr(stream, "isatty", None)
        return Progress(stream) if isatty is not None and isatty() else None

    def file(self, label: str, total: int | None) -> None:
        """Reading starts on *label*, of *total* bytes when known."""
        self._label = label
        self._total = total

    def update(self, done: int, lines: int) -> None:
        """*done* bytes and *lines* lines of the current file have been read."""
        now = time.monotonic()
        if now - self._started < self.delay or now - self._shown < self.every:
            return
        self._shown = now
        read = format_value(done, "By")
        if self._total:
            where = f"{100 * done // self._total}% ({read} of {format_value(self._total, 'By')}, {lines:,} lines)"
        else:
            where = f"{read}, {lines:,} lines"
        self.stream.write(f"\rinstrument report: reading {self._label}: {where}\x1b[K")
        self.stream.flush()
        self._dirty = True

    def done(self) -> None:
        """Erase the line, so what follows starts on a clean one."""
        if self._dirty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._dirty = False

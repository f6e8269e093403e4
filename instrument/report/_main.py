"""The command: print the table on standard output; write the HTML page when asked."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import IO

from ..exporters._table import render
from ._progress import Progress
from ._read import Report, ReportError, read


def text(report: Report) -> str:
    """The table printed on standard output: one row per series."""
    title = "\n".join([report.title(), *report.resource_lines()])
    return render(report.all_series(), title, self_metrics=report.self_metrics)


def main(files: Iterable[str], html: str | None, metrics: Sequence[str], self_metrics: bool = False) -> int:
    """``instrument report``: print the table; write the HTML page when asked. Returns the exit status."""
    _tolerant(sys.stdout)
    _tolerant(sys.stderr)
    try:
        report = read(list(files), metrics, self_metrics=self_metrics, progress=Progress.for_terminal(sys.stderr))
    except ReportError as exc:
        print(f"instrument report: {exc}", file=sys.stderr)
        return 2
    for note in report.skipped:
        print(f"instrument report: {note}", file=sys.stderr)
    sys.stdout.write(text(report))
    if html is not None:
        from ._html import render as page

        try:
            # Tags from undecodable file names hold lone surrogates: written escaped.
            with open(html, "w", encoding="utf-8", errors="backslashreplace") as out:
                out.write(page(report))
        except OSError as exc:
            print(f"instrument report: cannot write {html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"instrument report: plots written to {html}", file=sys.stderr)
    return 0


def _tolerant(stream: IO[str]) -> None:
    """Write what the stream's encoding cannot hold (lone surrogates of undecodable
    file names in tags) as backslash escapes, instead of failing."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")

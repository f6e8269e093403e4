"""``instrument report``: jsonl exports merged into one table, and optionally an HTML page.

The lines of every file, process and interval are folded into one row per series as
they are read (``_read``, ``_series``, ``_timeline``); the table is the exporters' own
(``exporters._table``); the page (``_html``) adds a summary, the table and plots
(``_svg``) of each series' distribution and of how it went over time.
"""

from __future__ import annotations

from ._main import main
from ._read import Report, ReportError, read

__all__ = ["Report", "ReportError", "main", "read"]

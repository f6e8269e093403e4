"""Reading back the text tables of `console`, `summary` and ``instrument report``."""

from __future__ import annotations

import re

NOT_ROWS = ("instrument lost data", "instrument's own metrics", "instrument report:", "instrument summary:",
            "instrument:")
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def rows(text: str) -> list[dict[str, str]]:
    """The rows of every table in *text*, as cells by column name.

    metric and tags are aligned left, the numbers right under their header; a cell holds
    at most single spaces ("3.23 ms"), cells are two or more spaces apart.
    """
    found: list[dict[str, str]] = []
    header: list[tuple[str, int, int]] | None = None
    for line in text.splitlines():
        if line.split()[:2] == ["metric", "tags"]:
            header = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", line)]
            continue
        if not line.strip():
            header = None  # a table ends at an empty line
        if header is None or line.startswith(NOT_ROWS):
            continue
        padded = line.ljust(header[-1][2])
        cells: dict[str, str] = {}
        for name, _, end in header[2:]:
            if padded[end - 1] == " ":
                cells[name] = ""
            else:
                cells[name] = re.search(r"\S+(?: \S+)*$", padded[:end]).group()
        tags_start = header[1][1]
        count_end = header[2][2]
        cells["metric"] = padded[:tags_start].strip()
        cells["tags"] = padded[tags_start : count_end - len(cells["count"])].strip()
        found.append(cells)
    return found


def row(text: str, metric: str, tags: str = "") -> dict[str, str]:
    """The cells of *metric*'s row with *tags* (as the table writes them: ``k=v,k=v``)."""
    matching = [r for r in rows(text) if r["metric"] == metric and r["tags"] == tags]
    assert len(matching) == 1, f"{len(matching)} rows for {metric} {tags!r} in:\n{text}"
    return matching[0]


def number(cell: str) -> float:
    """The value a cell shows, in seconds or bytes for those units ("3.23 ms" is 0.00323)."""
    value, _, unit = cell.partition(" ")
    return float(value) * UNITS.get(unit, 1)

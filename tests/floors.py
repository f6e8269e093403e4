"""The lowest versions we declare, as a pip requirements file: what ``tox -e floors`` installs.

Each floor is declared where it is used: a ``>=`` in pyproject's extras, an integration's
``min_version`` (the version it refuses to install below). This script gathers them, one pin
``name==floor`` per distribution, so the floors environment tests exactly what we claim;
a distribution declared twice with two floors is an error (tests/test_floors.py keeps the
declarations in agreement). Run by tox before installing: ``python tests/floors.py FILE``.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "instrument-client"
# The extras whose floors the floors environment installs: what users install, and what the
# suite needs. `bench` is left out: the benchmarks measure against current peers, not floors.
EXTRAS = ("otlp", "otlp-grpc", "http", "test-core", "test")
# An integration's distribution, as the extras may name another build of it
# (psycopg2's integration accepts either: integrations/psycopg2.py).
PUBLISHED_AS = {"psycopg2": "psycopg2-binary"}

# name, [extras], >= floor, ; marker. Nothing else: a floor is all an extra may say.
REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?\s*"
    r"(?:>=\s*(?P<floor>[0-9]+(?:\.[0-9]+)*))?\s*(?:;\s*(?P<marker>.+))?"
)


class Floor(NamedTuple):
    """One distribution's declared lowest version, and where it was declared."""

    name: str
    version: tuple[int, ...] | None  # None: no floor declared (installed as pip resolves it)
    marker: str | None
    where: str


def canonical(name: str) -> str:
    """PEP 503's normal form of a distribution name: "PyMySQL" and "pymysql" are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release(text: str) -> tuple[int, ...]:
    """A version string as numbers, trailing zeros dropped: "2.0" and "2" are one floor."""
    numbers = [int(part) for part in text.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def extra_floors(pyproject: Path = ROOT / "pyproject.toml", extras: tuple[str, ...] = EXTRAS) -> list[Floor]:
    """Every requirement of *extras* (those naming our own extras followed), as floors."""
    declared = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    found: list[Floor] = []
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for text in declared[extra]:
            match = REQUIREMENT.fullmatch(text.strip())
            if match is None:
                raise ValueError(f"pyproject extra {extra!r}: {text!r} is not `name[extras]>=floor; marker`")
            if canonical(match["name"]) == PROJECT:
                pending.extend(e.strip() for e in (match["extras"] or "").split(","))
                continue
            floor = release(match["floor"]) if match["floor"] else None
            found.append(Floor(match["name"], floor, match["marker"], f"pyproject [{extra}]"))
    return found


def integration_floors() -> list[Floor]:
    """Each integration's distribution and ``min_version`` (loading the classes imports no library)."""
    sys.path.insert(0, str(ROOT))
    from instrument.integrations import integrations, load

    found = []
    for identifier in integrations():
        cls = load(identifier)
        if cls.distribution is not None:
            name = PUBLISHED_AS.get(cls.distribution, cls.distribution)
            found.append(Floor(name, release(".".join(map(str, cls.min_version))), None, f"integration {identifier}"))
    return found


def pins(floors: list[Floor]) -> dict[str, Floor]:
    """One floor per distribution (by canonical name); ValueError when two declarations disagree.

    A declaration without a floor defers to one with a floor; the pin keeps an environment
    marker only if every declaration has one (the first's).
    """
    grouped: dict[str, list[Floor]] = {}
    for floor in floors:
        grouped.setdefault(canonical(floor.name), []).append(floor)
    chosen = {}
    for key, group in grouped.items():
        floored = [floor for floor in group if floor.version is not None]
        versions = {written(floor.version) for floor in floored}  # (2,) and (2, 0) are one floor
        if len(versions) > 1:
            raise ValueError(f"{group[0].name}: " + ", ".join(f"{written(f.version)} in {f.where}" for f in floored))
        pick = floored[0] if floored else group[0]
        marker = group[0].marker if all(floor.marker for floor in group) else None
        chosen[key] = pick._replace(marker=marker)
    return chosen


def written(version: tuple[int, ...] | None) -> str:
    """A floor as people write it: at least major.minor ("1.0", "2.0.21")."""
    return "" if version is None else ".".join(map(str, version + (0,) * (2 - len(version))))


def requirements(chosen: dict[str, Floor]) -> str:
    """The pip requirements file: ``name==floor`` for each, a bare name where none is declared.

    Extras such as ``psycopg[binary]`` are left out: the floor is the distribution's (psycopg's
    binary build ships for Python 3.11 only from 3.1.4; 3.1 runs on its pure-Python build).
    """
    lines = [f"# The declared floors, from {Path(__file__).name}: do not edit."]
    for _, floor in sorted(chosen.items()):
        line = floor.name if floor.version is None else f"{floor.name}=={written(floor.version)}"
        if floor.marker:
            line += f"; {floor.marker}"
        lines.append(f"{line}  # {floor.where}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Write the requirements file named by the one argument (or print it)."""
    text = requirements(pins(extra_floors() + integration_floors()))
    if len(argv) > 1:
        Path(argv[1]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

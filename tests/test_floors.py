"""The declared floors agree with each other, with the docs, and with what ``tox -e floors`` installs."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pytest

from instrument.integrations import integrations, load, parse_version

from . import floors

DOCS = floors.ROOT / "docs" / "auto-instrumentation.md"


def pinned() -> dict[str, floors.Floor]:
    return floors.pins(floors.extra_floors() + floors.integration_floors())


def minimum(cls: type) -> str:
    """An integration's ``min_version`` as the docs and the pins write it: (2,) is "2.0"."""
    return floors.written(floors.release(".".join(map(str, cls.min_version))))


class TestDeclarations:
    def test_each_distribution_has_one_floor(self):
        """pyproject's extras (bench's too) and the integrations never give one library two floors."""
        every_extra = (*floors.EXTRAS, "bench")
        floors.pins(floors.extra_floors(extras=every_extra) + floors.integration_floors())

    def test_every_integration_is_pinned_at_its_min_version(self):
        """The floors environment installs each instrumented library at the integration's own minimum."""
        chosen = pinned()
        for identifier in integrations():
            cls = load(identifier)
            if cls.distribution is None:
                continue
            name = floors.PUBLISHED_AS.get(cls.distribution, cls.distribution)
            assert minimum(cls) == floors.written(chosen[floors.canonical(name)].version)

    def test_requirements_pin_every_floor(self):
        """Every declared floor is one ``name==floor`` line of the requirements file."""
        text = floors.requirements(pinned())
        assert "psycopg2-binary==2.9.5  # pyproject [test]" in text.splitlines()
        requirements = {line.split("  #")[0].split(";")[0] for line in text.splitlines()}
        for floor in pinned().values():
            if floor.version is not None:
                assert f"{floor.name}=={floors.written(floor.version)}" in requirements

    def test_two_floors_for_one_library_are_refused_naming_both(self):
        """A library declared with two floors is an error that says where each was declared."""
        declared = [
            floors.Floor("requests", (2, 21), None, "pyproject [http]"),
            floors.Floor("Requests", (2, 25), None, "integration requests"),
        ]
        with pytest.raises(ValueError, match=r"requests: 2\.21 in pyproject \[http\], 2\.25 in integration requests"):
            floors.pins(declared)

    def test_an_extra_may_only_declare_a_floor(self, tmp_path: Path):
        """A cap or an exact version in an extra is refused: the floors environment could not pin it."""
        pyproject = tmp_path / "pyproject.toml"
        pyproject.write_text('[project.optional-dependencies]\nhttp = ["requests>=2.21,<3"]\n')
        with pytest.raises(ValueError, match=r"'requests>=2.21,<3' is not"):
            floors.extra_floors(pyproject, ("http",))

    def test_trailing_zeros_do_not_make_another_floor(self):
        """``flask>=2`` and ``min_version = (2, 0)`` are one floor, written 2.0."""
        declared = [floors.Floor("flask", floors.release("2"), None, "a"), floors.Floor("flask", (2, 0), None, "b")]
        assert "flask==2.0  # a" in floors.requirements(floors.pins(declared)).splitlines()


class TestDocs:
    def test_the_integrations_table_gives_each_floor(self):
        """docs/auto-instrumentation.md's "lowest version" column names each library at its floor."""
        rows = {}
        for line in DOCS.read_text().splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 4 and cells[0].startswith("`"):
                rows[cells[0].strip("`")] = cells[2].lower()
        for identifier in integrations():
            cls = load(identifier)
            if cls.distribution is None:
                continue
            row = rows[identifier.split(".")[0]]
            assert f"{cls.distribution.lower()} {minimum(cls)}" in row

    def test_the_lowest_versions_table_gives_each_pin(self):
        """The "Lowest versions" table lists every pinned library (its first word) at the pin."""
        text = DOCS.read_text().split("## Lowest versions", 1)[1]
        listed = {}
        for line in text.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[0] not in ("library", "---"):
                name = cells[0].split()[0].rstrip(",")
                listed[floors.canonical(floors.PUBLISHED_AS.get(name, name))] = cells[1]
        chosen = {key: floors.written(floor.version) for key, floor in pinned().items() if floor.version is not None}
        tools = {"pytest", "hypothesis", "opentelemetry-proto", "opentelemetry-exporter-otlp-proto-http",
                 "opentelemetry-exporter-otlp-proto-grpc"}  # test tools, and the SDK's row names these
        assert {key: value for key, value in chosen.items() if key not in tools} == listed


@pytest.mark.skipif(os.environ.get("INSTRUMENT_FLOORS") != "1", reason="only in tox -e floors (INSTRUMENT_FLOORS=1)")
class TestFloorsEnvironment:
    def test_every_floor_is_what_is_installed(self):
        """Each pinned distribution is installed at exactly its floor."""
        for floor in pinned().values():
            if floor.version is not None:
                assert floor.version == floors.release(".".join(map(str, parse_version(version(floor.name))))), floor

"""The documentation runs: every code block of README.md and docs/ meant to run does, and the
output a document shows is what its code prints (see tests/docs_blocks.py for the markers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict

import pytest

from .docs_blocks import ROOT, Block, blocks, documents, normalised

RUNNER = ROOT / "tests" / "docs_runner.py"
# Fragments in documents this change does not edit; their owners are to mark them
# `<!-- no-run -->`, after which these entries go. Keyed by document and first line.
AWAITING_MARKER: set[tuple[str, str]] = set()


def awaiting(block: Block) -> bool:
    return (block.document, block.text.splitlines()[0]) in AWAITING_MARKER


ALL = [block for path in documents() for block in blocks(path)]
RUN = [b for b in ALL if (b.runs or b.writes) and not awaiting(b)]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Each document's blocks run once, in a directory of its own holding the examples;
    the results by block."""
    done: dict[str, dict[int, dict]] = {}

    def results(document: str) -> dict[int, dict]:
        if document not in done:
            done[document] = run(document, tmp_path_factory.mktemp(document.replace("/", "-")))
        return done[document]

    return results


def run(document: str, directory) -> dict[int, dict]:
    chosen = [b for b in RUN if b.document == document]
    (directory / "examples").symlink_to(ROOT / "examples")
    (directory / "blocks.json").write_text(json.dumps([asdict(b) for b in chosen]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_", "PYTEST_"))}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])  # the instrument command
    finished = subprocess.run(
        [sys.executable, str(RUNNER), "blocks.json", "results.json"], cwd=directory, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert 0 == finished.returncode, finished.stderr
    results = json.loads((directory / "results.json").read_text())
    return {block.line: result for block, result in zip(chosen, results, strict=False)}


class TestDocumentation:
    @pytest.mark.parametrize("block", [b for b in RUN if b.runs], ids=str)
    def test_the_block_runs(self, block, sessions):
        """The block runs without error, after the blocks before it in its document."""
        result = sessions(block.document).get(block.line)
        assert result is not None, f"not run: an earlier block of {block.document} failed"
        assert result["ok"], f"{block} failed:\n{result['error']}\n{result['stderr']}"

    @pytest.mark.parametrize("block", [b for b in RUN if b.output is not None], ids=str)
    def test_the_output_shown_is_what_it_prints(self, block, sessions):
        """What the document shows below the block is its output (varying durations, times and pids aside)."""
        result = sessions(block.document).get(block.line)
        assert result is not None and result["ok"], f"{block} did not run"
        assert normalised(block.output) == normalised(result["stdout"] + result["stderr"])


def markdown(tmp_path, text):
    path = tmp_path / "docs" / "page.md"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(text))
    return blocks_of(path)


def blocks_of(path):
    """Blocks of a Markdown file outside the repository, named relative to its directory."""
    import tests.docs_blocks as module

    original = module.ROOT
    module.ROOT = path.parents[1]
    try:
        return blocks(path)
    finally:
        module.ROOT = original


class TestCollector:
    def test_python_runs_unless_marked_and_shell_runs_when_its_output_is_shown(self, tmp_path):
        """The markers and the output convention, as documented in docs_blocks."""
        found = markdown(tmp_path, """\
            ```python
            print(1)
            ```

            ```output
            1
            ```

            <!-- no-run -->
            ```python
            fragment(
            ```

            <!-- file: helper.py -->
            ```python
            X = 1
            ```

            ```sh
            pip install something
            ```

            ```sh
            echo hi
            ```
            ```output
            hi
            ```

            Some text.

            ```output
            not attached: prose came between
            ```
            """)
        assert [(2, True, "1\n"), (11, False, None), (16, False, None), (20, False, None), (24, True, "hi\n")] == [
            (b.line, b.runs, b.output) for b in found[:5]
        ]
        assert ("file", "helper.py", True) == (found[2].marker, found[2].file, found[2].writes)
        assert "output" == found[5].language

    def test_varying_parts_are_named_before_comparing(self):
        """Durations (3.23 ms, 1.1s, 2m 05s), times, dates and pids differ between runs; the rest must match."""
        shown = "instrument summary: 1.1s (pid 6208)\nt  route=/a     3  3.23 ms  302 us\n2026-01-02 10:11:12"
        assert [
            "instrument summary: <duration> (pid <pid>)", "t route=/a 3 <duration> <duration>", "<date> <time>"
        ] == normalised(shown)
        assert normalised("jobs  4") != normalised("jobs  5")

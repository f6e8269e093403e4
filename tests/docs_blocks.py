"""The code blocks of README.md and docs/*.md that are meant to run, and the output they show.

Conventions, in the Markdown (HTML comments, invisible once rendered), each on the line
before a fence:

- a ```` ```python ```` block runs, in order with the document's other blocks, in one
  interpreter and one namespace, as a reader pasting them would;
- ``<!-- no-run -->``: the block is not run (a synopsis, a fragment, or code that needs a
  real external service);
- ``<!-- file: NAME -->``: the block is written to the file NAME instead (a module the
  next blocks import, a test file a shell block runs);
- a ```` ```sh ```` block runs (in bash) when an ```` ```output ```` block follows it, or
  when marked ``<!-- run -->``;
- an ```` ```output ```` block right after a block that runs is what that block prints:
  its standard output, then its standard error. Durations, times of day, dates and
  process ids vary between runs and are compared as such; everything else exactly
  (whitespace runs count as one space).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^ {0,3}(`{3,})\s*([\w+-]*)")
MARKER = re.compile(r"^<!--\s*(no-run|run|file:\s*(\S+))\s*-->$")
SHELLS = ("sh", "bash", "console", "shell")

# Varying parts of shown output, replaced by a name before comparing.
VARYING = (
    (re.compile(r"\b\d{4}-\d\d-\d\d\b"), "<date>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"\bpid \d+\b"), "pid <pid>"),
    (re.compile(r"-?\b\d+(?:\.\d+)? ?(?:ns|us|ms|s)\b"), "<duration>"),
    (re.compile(r"\b\d+h \d\dm \d\ds\b|\b\d+m \d\ds\b"), "<duration>"),
    # The event loop is sampled every 100 ms: its number of samples follows the run's length.
    (re.compile(r"^(asyncio\.event_loop\.lag\s+)\d+\b", re.MULTILINE), r"\1<samples>"),
)


@dataclass
class Block:
    document: str  # relative to the repository
    line: int  # of the first line of code
    language: str
    text: str
    marker: str | None = None  # "no-run", "run" or "file"
    file: str | None = None
    output: str | None = None  # what it shows it prints

    @property
    def runs(self) -> bool:
        if self.marker in ("no-run", "file"):
            return False
        if self.language == "python":
            return True
        return self.language in SHELLS and (self.marker == "run" or self.output is not None)

    @property
    def writes(self) -> bool:
        return self.marker == "file"

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of the Markdown file *path*, markers and shown output attached."""
    lines = path.read_text().splitlines()
    document = path.relative_to(ROOT).as_posix()
    found: list[Block] = []
    previous_text = ""  # the last non-blank line outside a fence
    since_block = True  # only blank lines since the last fence closed
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            if lines[index].strip():
                previous_text = lines[index].strip()
                since_block = False
            index += 1
            continue
        ticks, language = opening.group(1), opening.group(2)
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        text = "\n".join(lines[index + 1 : end]) + "\n"
        if language == "output" and since_block and found and found[-1].output is None:
            found[-1].output = text
        else:
            marker = MARKER.match(previous_text)
            block = Block(document, index + 2, language, text)
            if marker is not None:
                block.marker = "file" if marker.group(2) else marker.group(1)
                block.file = marker.group(2)
            found.append(block)
        previous_text = ""
        since_block = True
        index = end + 1
    return found


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def normalised(text: str) -> list[str]:
    """*text*'s lines with the varying parts named and whitespace runs made one space."""
    result = []
    for line in text.strip("\n").splitlines():
        for pattern, name in VARYING:
            line = pattern.sub(name, line)
        result.append(" ".join(line.split()))
    return result

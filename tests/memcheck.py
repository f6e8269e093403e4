"""Memory safety of the C fast path (``tox -e memcheck``): AddressSanitizer, then valgrind.

1. The extension built with AddressSanitizer and UndefinedBehaviorSanitizer runs the core
   tests. The interpreter is not built with ASan, so its runtime is preloaded
   (``LD_PRELOAD``); ``PYTHONMALLOC=malloc`` sends Python objects through ASan's allocator;
   leak detection is off (CPython keeps objects alive at exit by design). This catches bad
   accesses made by the extension's own code, double frees and undefined behaviour.
2. The extension built plainly (``-g -O1``) runs its own tests and the decorator tests
   under valgrind's memcheck (about three minutes), also with ``PYTHONMALLOC=malloc``: valgrind sees every
   access, the interpreter's too, so a reference the C code drops too early (a use after
   free inside CPython) is reported.

Each phase builds into a copy of the package and the tests in a temporary directory, so the
source tree's own build (the other tox environments import it) is left alone. Any error
fails the run. Reference and memory growth over many calls is measured by
tests/test_speedups.py itself (``INSTRUMENT_LEAK_CALLS``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = [
    "tests/test_speedups.py",
    "tests/test_decorate.py",
    "tests/test_record.py",
    "tests/test_buffers.py",
    "tests/test_runtime.py",
    "tests/test_threads.py",
    "tests/test_testing.py",
    "tests/test_pipeline.py",
]
UNDER_VALGRIND = ["tests/test_speedups.py", "tests/test_decorate.py"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]
IN_CI = os.environ.get("INSTRUMENT_CI") == "1"


def build(work: Path, flags: list[str]) -> None:
    """Copy the package and the tests to *work* and build the extension there with *flags*."""
    ignore = shutil.ignore_patterns("*.so", "__pycache__")
    for name in ("instrument", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", work)
    target = work / "instrument" / f"_fast{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    cc = os.environ.get("CC", "cc")
    command = [cc, "-shared", "-fPIC", "-Wall", *flags, "-I", include, "instrument/_fast.c", "-o", str(target)]
    subprocess.run(command, cwd=work, check=True)


def missing(what: str) -> int:
    print(f"memcheck: {what}", file=sys.stderr)
    return 1 if IN_CI else 0


def address_sanitizer(argv: list[str]) -> int:
    cc = os.environ.get("CC", "cc")
    runtime = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(runtime):
        return missing(f"{cc} has no AddressSanitizer runtime (libasan.so): install gcc")
    with tempfile.TemporaryDirectory(prefix="instrument-asan-") as tmp:
        build(Path(tmp), SANITIZE)
        env = {
            "LD_PRELOAD": " ".join(filter(None, [runtime, os.environ.get("LD_PRELOAD")])),
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
            "UBSAN_OPTIONS": "print_stacktrace=1",
        }
        return _pytest(Path(tmp), env, [], [*CORE, *argv])


def valgrind(argv: list[str]) -> int:
    binary = shutil.which("valgrind")
    if binary is None:
        return missing("valgrind is not installed (.ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="instrument-valgrind-") as tmp:
        build(Path(tmp), ["-g", "-O1"])
        suppressions = ROOT / "tests" / "valgrind.supp"
        command = [binary, "--quiet", "--error-exitcode=99", f"--suppressions={suppressions}"]
        return _pytest(Path(tmp), {"INSTRUMENT_LEAK_CALLS": "5000"}, command, [*UNDER_VALGRIND, *argv])


def _pytest(work: Path, env: dict[str, str], prefix: list[str], tests: list[str]) -> int:
    env = {**os.environ, "PYTHONMALLOC": "malloc", "INSTRUMENT_PURE_PYTHON": "", **env}
    check = "import instrument, instrument._speedups as s; assert instrument.__speedups__, s.REASON"
    subprocess.run([*prefix, sys.executable, "-c", check], cwd=work, env=env, check=True)
    command = [*prefix, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *tests]
    return subprocess.run(command, cwd=work, env=env).returncode


def main(argv: list[str]) -> int:
    return address_sanitizer(argv) or valgrind(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

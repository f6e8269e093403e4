"""Build the optional C fast path (`instrument._fast`); without a compiler, install without it.

Everything else is declared in pyproject.toml. Where the extension cannot be built (no C
compiler, no Python headers), the pure-Python hot path is used and the build says so in
one line.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure-Python path instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # no compiler at all (setuptools raises on the platform)
            self._fallback(error)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # a compiler that fails (missing Python.h, ...)
            self._fallback(error)

    @staticmethod
    def _fallback(error: BaseException) -> None:
        reason = str(error).strip().splitlines()[-1:] or [type(error).__name__]
        print(f"instrument: C fast path not built ({reason[0]}); using the pure-Python path", file=sys.stderr)


extra_compile_args = ["-O2"] if os.name == "posix" else []
setup(
    ext_modules=[Extension("instrument._fast", ["instrument/_fast.c"], extra_compile_args=extra_compile_args)],
    cmdclass={"build_ext": OptionalBuildExt},
)

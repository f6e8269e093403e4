"""Runs one document's blocks, in order, in the current directory: python blocks in this
interpreter with one shared namespace, shell blocks in bash, file blocks written out.

Usage: python docs_runner.py BLOCKS.json RESULTS.json. Stops at the first block that fails;
the results say, per block run, whether it ran, what it printed, and the error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback


def run_python(block: dict, namespace: dict) -> dict:
    out, err = io.StringIO(), io.StringIO()
    # Blank lines first, so that tracebacks give the line numbers of the document.
    code = "\n" * (block["line"] - 1) + block["text"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(code, block["document"], "exec"), namespace)
    except BaseException:  # SystemExit and KeyboardInterrupt from a block are failures too
        return {"ok": False, "stdout": out.getvalue(), "stderr": err.getvalue(), "error": traceback.format_exc()}
    return {"ok": True, "stdout": out.getvalue(), "stderr": err.getvalue(), "error": ""}


def run_shell(block: dict) -> dict:
    done = subprocess.run(["bash", "-c", block["text"]], capture_output=True, text=True, timeout=300)
    error = "" if done.returncode == 0 else f"exit status {done.returncode}"
    return {"ok": done.returncode == 0, "stdout": done.stdout, "stderr": done.stderr, "error": error}


def main() -> None:
    with open(sys.argv[1]) as source:
        blocks = json.load(source)
    sys.path.insert(0, os.getcwd())  # file blocks are modules the next blocks import
    namespace: dict = {"__name__": "__main__"}
    results = []
    for block in blocks:
        if block["file"]:
            with open(block["file"], "w") as out:
                out.write(block["text"])
            result = {"ok": True, "stdout": "", "stderr": "", "error": ""}
        elif block["language"] == "python":
            result = run_python(block, namespace)
        else:
            result = run_shell(block)
        results.append(result)
        if not result["ok"]:
            break
    with open(sys.argv[2], "w") as out:
        json.dump(results, out)


if __name__ == "__main__":
    main()

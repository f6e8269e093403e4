"""Real WSGI servers in subprocesses under `instrument run`, for the WSGI tests.

`Served` starts a server command under ``python -m instrument run`` with the jsonl
exporter writing to a file of the test's own, waits until the server accepts
connections on its 127.0.0.1 port, and stops it (gracefully, with the server's own
stop signal) when the ``with`` block ends, so that every worker has flushed before
the test reads what was exported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.helpers import free_port, require_binary

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DURATION = "http.server.request.duration"
ACTIVE = "http.server.active_requests"


def server_binary(name: str) -> str:
    """Path of server program *name*, next to this Python first; skip without it, fail in CI."""
    return require_binary(name, os.pathsep.join([str(BIN), os.environ.get("PATH", "")]), "the test extras")






class Served:
    """``with Served(tmp_path, [command...]) as server:`` a server under `instrument run`.

    *command* may contain ``{port}``, replaced by a free port. *stop* is the signal
    that shuts the server down gracefully (SIGTERM for gunicorn, SIGINT for uwsgi,
    waitress and wsgiref).
    """

    def __init__(self, tmp_path: Path, command: list[str], *, stop: int = signal.SIGTERM, repeat_stop: bool = False,
                 env: dict[str, str] | None = None,
                 launcher: list[str] | None = None, exporters: str | None = "jsonl") -> None:
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.stop_signal = stop
        self.repeat_stop = repeat_stop
        self.metrics = tmp_path / f"metrics-{self.port}.jsonl"
        self.log = tmp_path / f"server-{self.port}.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        self.env = {
            **inherited,
            "PATH": os.pathsep.join([str(BIN), inherited.get("PATH", "")]),
            "PYTHONPATH": str(ROOT),
            "INSTRUMENT_JSONL_PATH": str(self.metrics),
            "INSTRUMENT_INTERVAL": "1",
            "PYTHONFAULTHANDLER": "1",  # a server stuck at stop() dumps its threads on SIGABRT
            **(env or {}),
        }
        if exporters is not None:
            self.env["INSTRUMENT_EXPORTERS"] = exporters
        self.launcher = launcher or [sys.executable, "-m", "instrument", "run", "--"]
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Served:
        log = open(self.log, "wb")
        try:
            self.process = subprocess.Popen([*self.launcher, *self.command], cwd=ROOT, env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        finally:
            log.close()
        try:
            self._wait_until_listening(60.0)
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not listen on 127.0.0.1:{self.port} in {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 60.0) -> int:
        """Stop the server gracefully (its workers flush on the way out); its exit status."""
        if self.process is None:
            return 0
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            # With repeat_stop: a SIGINT that lands while wsgiref or waitress is still
            # finishing a request (closing its response) is caught by the server's own
            # error handling, which catches everything there, and the server carries on:
            # ask again, as an operator would press Ctrl-C again.
            self.process.send_signal(self.stop_signal)
            wait = min(5.0, max(0.1, deadline - time.monotonic())) if self.repeat_stop else timeout
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    self._dump_threads()
                    self._kill()
                    raise AssertionError(f"server did not stop within {timeout} s:\n{self.output()}") from None
        return self.process.returncode

    def _dump_threads(self) -> None:
        """Make a stuck server print every thread's stack (faulthandler) into its log."""
        try:
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def _kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the server and its workers
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def points(self) -> list[dict]:
        """Every point the server's processes exported."""
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines()]


def scrape_requests(port: int, expected: int, timeout: float = 15.0) -> tuple[float, str]:
    """Scrape the Prometheus endpoint on *port* until it counts *expected* server requests (or
    *timeout* passes): (the count, the last body)."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        total = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                    if line.startswith("http_server_request_duration_seconds_count"))
        if total >= expected or time.monotonic() > deadline:
            return total, body
        time.sleep(0.2)


def requests_by_tags(points: list[dict], *keys: str) -> Counter:
    """Count of measured requests per tuple of the tag values *keys* (None where absent)."""
    counts: Counter = Counter()
    for point in points:
        if point["name"] == DURATION:
            counts[tuple(point["tags"].get(key) for key in keys)] += point["count"]
    return counts


def total_requests(points: list[dict]) -> int:
    return sum(point["count"] for point in points if point["name"] == DURATION)


def extremes(points: list[dict], **tags: object) -> tuple[float, float]:
    """Shortest and longest request duration (s) over the points whose tags include *tags*."""
    chosen = [point for point in points
              if point["name"] == DURATION and all(point["tags"].get(k) == v for k, v in tags.items())]
    assert chosen, f"no {DURATION} point with tags {tags}"
    return min(point["min"] for point in chosen), max(point["max"] for point in chosen)

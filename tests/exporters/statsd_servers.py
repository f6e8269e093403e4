"""Real receivers for the statsd exporter tests: Etsy's statsd server and a bare UDP socket.

Etsy's statsd (npm package ``statsd``, installed by .ci/run into .ci/node_modules) runs
with a flush interval of an hour, so nothing is flushed while a test sends. Its
management port tells when it is up. Two backends are loaded: the repeater, which
forwards every datagram the server receives to a socket the test reads (to see the
datagrams as the server got them), and a few lines of our own that write each flush
as JSON and make SIGTERM exit through statsd's own exit handler, which flushes: so
`EtsyStatsd.stop()` returns the server's counters, gauges and timer statistics
(count, upper_90, ...) computed by statsd itself over everything it received.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ..helpers import IN_CI, free_port

STATSD_PACKAGE = Path(__file__).resolve().parents[2] / ".ci" / "node_modules" / "statsd"
PERCENTILES = (50, 90, 99)

# A statsd backend: appends every flush to config.flushFile as one JSON line.
FLUSH_BACKEND = """\
const fs = require('fs');
exports.init = function (startupTime, config, events) {
  events.on('flush', function (timestamp, metrics) {
    const flushed = {counters: metrics.counters, gauges: metrics.gauges, timer_data: metrics.timer_data};
    fs.appendFileSync(config.flushFile, JSON.stringify(flushed) + '\\n');
  });
  process.on('SIGTERM', function () { process.exit(0); });
  return true;
};
"""

INSTALL_STATSD = "npm install --prefix .ci --no-save --no-audit --no-fund statsd"


def require_etsy_statsd() -> Path:
    """The statsd package's launcher; skip without it, but fail in CI, where .ci/run installs it."""
    launcher = STATSD_PACKAGE / "bin" / "statsd"
    if not launcher.is_file():
        message = f"Etsy's statsd is not installed in {STATSD_PACKAGE.parent}; run `{INSTALL_STATSD}`"
        if IN_CI:
            pytest.fail(message + " (INSTRUMENT_CI=1: .ci/run must install it)")
        pytest.skip(message)
    return launcher


class UdpReceiver:
    """A UDP socket that keeps every datagram it receives, read when asked."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.socket.bind((host, port))
        self.address: tuple[str, int] = self.socket.getsockname()[:2]
        self.datagrams: list[bytes] = []

    def until(self, token: bytes, timeout: float = 10.0) -> list[bytes]:
        """Receive until a datagram holding *token* comes; the datagrams before that one."""
        deadline = time.monotonic() + timeout
        while True:
            for index, datagram in enumerate(self.datagrams):
                if token in datagram:
                    return self.datagrams[:index]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no datagram with {token!r} within {timeout} s; got {self.datagrams!r}")
            self.socket.settimeout(remaining)
            try:
                self.datagrams.append(self.socket.recv(65536))
            except TimeoutError:
                continue

    def close(self) -> None:
        self.socket.close()


class EtsyStatsd:
    """Etsy's statsd server on free ports of 127.0.0.1, for one test."""

    def __init__(self, node: str, directory: Path) -> None:
        self.repeated = UdpReceiver()
        self.address = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
        self.mgmt_port = free_port(socket.SOCK_STREAM)
        self.flush_file = directory / "flushed.jsonl"
        self.log_file = directory / "statsd.log"
        backend = directory / "flush_backend.js"
        backend.write_text(FLUSH_BACKEND)
        config = {
            "address": self.address[0],
            "port": self.address[1],
            "mgmt_address": "127.0.0.1",
            "mgmt_port": self.mgmt_port,
            "flushInterval": 3_600_000,
            "percentThreshold": list(PERCENTILES),
            "backends": ["./backends/repeater", str(backend)],
            "repeater": [{"host": "127.0.0.1", "port": self.repeated.address[1]}],
            "flushFile": str(self.flush_file),
            "automaticConfigReload": False,
        }
        config_file = directory / "statsd-config.js"
        config_file.write_text(json.dumps(config))
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                [node, str(STATSD_PACKAGE / "bin" / "statsd"), str(config_file)],
                cwd=directory, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.close()
            raise

    def _wait_until_up(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"statsd exited with {self.process.returncode}:\n{self.log()}")
            if self.command("health").startswith("health: up"):
                return
            time.sleep(0.05)
        raise AssertionError(f"statsd's management port {self.mgmt_port} did not answer in {timeout} s:\n{self.log()}")

    def command(self, command: str) -> str:
        """One management command's answer ('' while the port does not answer)."""
        try:
            with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=2.0) as mgmt:
                mgmt.sendall(command.encode() + b"\n")
                return mgmt.recv(65536).decode()
        except OSError:
            return ""

    def management(self, what: str) -> dict[str, Any]:
        """What the management port answers to ``counters``, ``gauges`` or ``timers``, as a dict:
        numbers, or lists of the timer values it holds (statsd prints them with util.inspect,
        which shows the first 100 values of a longer list only)."""
        with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=5.0) as mgmt:
            mgmt.sendall(what.encode() + b"\n")
            answer = b""
            while not answer.rstrip().endswith(b"END"):
                chunk = mgmt.recv(65536)
                if not chunk:
                    break
                answer += chunk
        text = re.sub(r"\.\.\. \d+ more items?", "", answer.decode().rstrip().removesuffix("END"))
        found: dict[str, Any] = {}
        for match in re.finditer(r"(?:'([^']+)'|([A-Za-z_$][\w$.]*)): (\[[^\]]*\]|-?[\d.e+-]+)", text):
            key = match.group(1) or match.group(2)
            value = match.group(3)
            if value.startswith("["):
                found[key] = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", value)]
            else:
                found[key] = float(value)
        return found

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> dict[str, Any]:
        """Stop the server, which flushes once more; that flush: counters, gauges, timer_data."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        lines = self.flush_file.read_text().splitlines() if self.flush_file.exists() else []
        if not lines:
            raise AssertionError(f"statsd wrote no flush:\n{self.log()}")
        flushed: dict[str, Any] = json.loads(lines[-1])
        return flushed

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.repeated.close()

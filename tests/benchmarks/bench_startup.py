"""Start-up cost of `instrument run` against `opentelemetry-instrument`, side by side.

Two cases, each run many times with rounds interleaved; the tables show median wall
time and what each launcher adds over the plain command:

- ``python -c pass``: the launchers alone (both exec the program: two interpreter
  start-ups);
- a real application: the Flask example (``examples/flask_service.py``) under
  ``gunicorn -w 1``, from launch to its first successful response, so the hooks that
  run when Flask, requests and sqlite3 are imported count too.

Both launchers are configured not to export anywhere (instrument: jsonl to /dev/null;
OpenTelemetry: exporters "none").
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = os.path.dirname(sys.executable)
ROOT = Path(__file__).resolve().parents[2]


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(rounds: int = 21) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "OTEL_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure with bytecode caches, as deployed
    otel_env = {**env, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none"}
    commands = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "instrument run -- python -c pass": ([os.path.join(BIN, "instrument"), "run", "--", sys.executable,
                                              "-c", "pass"], env),
    }
    otel = shutil.which("opentelemetry-instrument", path=BIN)
    if otel:
        commands["opentelemetry-instrument python -c pass"] = ([otel, sys.executable, "-c", "pass"], otel_env)
    for command, command_env in commands.values():  # warm caches and bytecode
        timed(command, command_env)
        timed(command, command_env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, (command, command_env) in commands.items():
            samples[name].append(timed(command, command_env))
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    base = medians["python -c pass"]
    print(f"\nStart-up, median of {rounds} runs each, interleaved:")
    print(f"{'':44} {'ms':>7} {'added':>7}")
    for name, ms in medians.items():
        print(f"{name:44} {ms:7.1f} {ms - base:7.1f}")
    ours = medians["instrument run -- python -c pass"] - base
    if otel:
        theirs = medians["opentelemetry-instrument python -c pass"] - base
        print(f"instrument adds {ours / theirs:.2f}x what opentelemetry-instrument adds (target <= 0.5)")
        return ours / theirs
    print("opentelemetry-instrument is not installed: no comparison")
    return float("nan")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def first_response(command: list[str], env: dict[str, str], port: int) -> float:
    """Seconds from launching *command* to its first 200 on ``/rates``; the server is then stopped."""
    start = time.perf_counter()
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {server.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/rates", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.002)
    finally:
        server.terminate()
        server.wait(30)


def application(rounds: int = 9) -> float:
    """Launch to first response of the Flask example under gunicorn -w 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "OTEL_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    ours_env = {**env, "INSTRUMENT_EXPORTERS": "jsonl", "INSTRUMENT_JSONL_PATH": os.devnull}
    otel_env = {**env, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    gunicorn = [os.path.join(BIN, "gunicorn"), "-w", "1", "--bind", "127.0.0.1:{port}", "examples.flask_service:app"]
    commands = {
        "gunicorn -w 1 (Flask example)": ([], env),
        "instrument run -- gunicorn ...": ([os.path.join(BIN, "instrument"), "run", "--"], ours_env),
    }
    otel = shutil.which("opentelemetry-instrument", path=BIN)
    if otel:
        commands["opentelemetry-instrument gunicorn ..."] = ([otel], otel_env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(rounds + 1):  # the first round warms caches and bytecode
        for name, (launcher, command_env) in commands.items():
            port = _free_port()
            command = [*launcher, *(part.replace("{port}", str(port)) for part in gunicorn)]
            elapsed = first_response(command, command_env, port)
            if round_:
                samples[name].append(elapsed)
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    base = medians["gunicorn -w 1 (Flask example)"]
    print(f"\nLaunch to first response, Flask example under gunicorn -w 1, median of {rounds} interleaved runs:")
    print(f"{'':44} {'ms':>7} {'added':>7}")
    for name, ms in medians.items():
        print(f"{name:44} {ms:7.1f} {ms - base:7.1f}")
    ours = medians["instrument run -- gunicorn ..."] - base
    if otel:
        theirs = medians["opentelemetry-instrument gunicorn ..."] - base
        print(f"instrument adds {ours / theirs:.2f}x what opentelemetry-instrument adds (target <= 0.5)")
        return ours / theirs
    return float("nan")


if __name__ == "__main__":
    main()
    application()

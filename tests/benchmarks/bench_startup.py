"""Start-up cost of `instrument run` against `opentelemetry-instrument`, side by side.

Each command runs ``python -c pass`` many times, rounds interleaved; the table shows
median wall time and what each launcher adds over plain ``python -c pass``. Both
launchers exec the program (two interpreter start-ups), and both are configured not
to export anywhere (instrument: its defaults; OpenTelemetry: exporters "none").
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

BIN = os.path.dirname(sys.executable)


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


if __name__ == "__main__":
    main()

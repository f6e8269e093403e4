"""The ``instrument`` command: ``instrument run [options] -- PROGRAM ARGS...`` and
``instrument report FILE.jsonl [--html OUT.html]``."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from ._config import ENV_PREFIX, OPTIONS

_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # a Markdown link in an option's help: its text
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
DEFAULT_EXPORTERS = "jsonl,summary"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instrument", description="Instrument Python programs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run a program with instrumentation",
        description=(
            "Run PROGRAM instrumented: a sitecustomize hook configures instrument in every "
            "Python process it starts. Options become INSTRUMENT_* variables, which child "
            f"processes inherit. With no exporter configured: {DEFAULT_EXPORTERS}."
        ),
    )
    run.add_argument("--exporter", action="append", metavar="NAME", help="an exporter (repeatable)")
    run.add_argument("--disable", action="append", metavar="NAME", help="an integration not to install (repeatable)")
    options = run.add_argument_group(
        "instrument's options", "each option of docs/configuration.md: --NAME VALUE sets INSTRUMENT_NAME=VALUE"
    )
    for option in OPTIONS:
        text = _LINK.sub(r"\1", option.help).replace("`", "").replace("%", "%%")
        options.add_argument(f"--{option.name.replace('_', '-')}", dest=_dest(option.name), metavar="VALUE", help=text)
    run.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS...")
    report = commands.add_parser(
        "report",
        help="summarise jsonl exports: a latency table, optionally an HTML page of plots",
        description=(
            "Merge the lines of jsonl exports (several intervals, processes or files) into one "
            "row per series: counters add up, gauges keep the latest value, histograms are merged "
            "bucket by bucket, so percentiles are those of every recorded value."
        ),
    )
    report.add_argument("files", nargs="+", metavar="FILE.jsonl", help="jsonl exports ('-' reads standard input)")
    report.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML page of plots")
    report.add_argument(
        "--metric", action="append", default=[], metavar="PATTERN",
        help="only metrics whose name matches this glob, e.g. 'http.*' (repeatable)",
    )
    report.add_argument(
        "--self-metrics", action="store_true",
        help="also show instrument's own metrics (instrument.*), in a section of their own",
    )
    return parser


def _dest(name: str) -> str:
    return "option_" + name


def _run_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment the program runs with; raises ConfigurationError on bad options.

    Each ``--NAME VALUE`` becomes ``INSTRUMENT_NAME=VALUE``; ``--exporter`` and ``--disable``
    add to ``--exporters`` and ``--disabled-integrations`` (or to the variables)."""
    from ._config import from_environ

    env = dict(environ)
    for option in OPTIONS:
        value = getattr(args, _dest(option.name))
        if value is not None:
            env[ENV_PREFIX + option.name.upper()] = value
    if args.exporter:
        given = getattr(args, _dest("exporters"))
        env[ENV_PREFIX + "EXPORTERS"] = ",".join(([given] if given else []) + args.exporter)
    elif not env.get(ENV_PREFIX + "EXPORTERS", "").strip():
        env[ENV_PREFIX + "EXPORTERS"] = DEFAULT_EXPORTERS
    if not env.get(ENV_PREFIX + "FLUSH_ON_SIGTERM", "").strip():
        env[ENV_PREFIX + "FLUSH_ON_SIGTERM"] = "true"  # see _signals: only while SIGTERM is the default
    if args.disable:
        already = [n for n in env.get(ENV_PREFIX + "DISABLED_INTEGRATIONS", "").split(",") if n.strip()]
        env[ENV_PREFIX + "DISABLED_INTEGRATIONS"] = ",".join(already + args.disable)
    from_environ(env)  # check everything now, before the program starts
    paths = [BOOTSTRAP_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "report":
        from .report import main as report_main

        return report_main(args.files, args.html, args.metric, args.self_metrics)
    program = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    if not program:
        parser.error("run needs a program: instrument run -- python app.py")
    from ._config import ConfigurationError

    try:
        env = _run_environment(args, dict(os.environ))
    except ConfigurationError as exc:
        print(f"instrument run: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(program[0], program, env)
    except FileNotFoundError:
        print(f"instrument run: program {program[0]!r} not found (is it on PATH?)", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"instrument run: program {program[0]!r} is not executable", file=sys.stderr)
        return 126
    except OSError as exc:
        print(f"instrument run: cannot run {program[0]!r}: {exc}", file=sys.stderr)
        return 126

"""Configuration: arguments > INSTRUMENT_* variables > defaults, with errors that name the culprit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import instrument
from instrument._config import ConfigurationError, Settings, from_arguments, from_environ, settings


class TestEnvironment:
    def test_parses_every_option(self):
        env = {
            "INSTRUMENT_ENABLED": "off",
            "INSTRUMENT_EXPORTERS": "jsonl, console",
            "INSTRUMENT_INTERVAL": "2.5",
            "INSTRUMENT_JSONL_PATH": "/tmp/x.jsonl",
            "INSTRUMENT_CARDINALITY_LIMIT": "10",
            "INSTRUMENT_BUFFER_SIZE": "100",
            "INSTRUMENT_MAX_PENDING": "1000",
            "INSTRUMENT_QUEUE_SIZE": "3",
            "INSTRUMENT_EXIT_TIMEOUT": "0",
        }
        assert {
            "enabled": False,
            "exporters": ("jsonl", "console"),
            "interval": 2.5,
            "jsonl_path": "/tmp/x.jsonl",
            "cardinality_limit": 10,
            "buffer_size": 100,
            "max_pending": 1000,
            "queue_size": 3,
            "exit_timeout": 0.0,
        } == from_environ(env)

    def test_exporter_options_from_the_environment(self):
        env = {
            "INSTRUMENT_PROMETHEUS_ADDRESS": "0.0.0.0:9100",
            "INSTRUMENT_STATSD_ADDRESS": "[::1]:8126",
            "INSTRUMENT_STATSD_MAX_DATAGRAM": "512",
            "INSTRUMENT_HTTP_URL": "https://ingest.example/v1",
            "INSTRUMENT_HTTP_HEADERS": "x-api-key=abc==,x-team=pay",
            "INSTRUMENT_HTTP_TIMEOUT": "3",
            "INSTRUMENT_PROMETHEUS_NATIVE_MAX_BUCKETS": "160",
            "INSTRUMENT_CLASSIC_BUCKETS": "http.server.request.duration=0.25, 0.1 ,1;unit:By=1024",
        }
        assert {
            "prometheus_address": ("0.0.0.0", 9100),
            "statsd_address": ("::1", 8126),
            "statsd_max_datagram": 512,
            "http_url": "https://ingest.example/v1",
            "http_headers": (("x-api-key", "abc=="), ("x-team", "pay")),
            "http_timeout": 3.0,
            "prometheus_native_max_buckets": 160,
            "classic_buckets": {"http.server.request.duration": (0.1, 0.25, 1.0), "unit:By": (1024.0,)},
        } == from_environ(env)

    def test_defaults(self):
        """Listeners and targets on loopback; the documented sizes and times."""
        defaults = Settings({}).current
        assert ("127.0.0.1", 9464) == defaults.prometheus_address
        assert ("127.0.0.1", 8125) == defaults.statsd_address
        assert 1432 == defaults.statsd_max_datagram
        assert (10.0, 2000, 5.0) == (defaults.interval, defaults.cardinality_limit, defaults.exit_timeout)
        assert (True, (), "./instrument-metrics.jsonl") == (defaults.enabled, defaults.exporters, defaults.jsonl_path)

    def test_empty_values_mean_unset(self):
        assert {} == from_environ({"INSTRUMENT_INTERVAL": "", "INSTRUMENT_EXPORTERS": " "})

    @pytest.mark.parametrize(
        ("variable", "value", "message"),
        [
            ("INSTRUMENT_INTERVAL", "soon", "INSTRUMENT_INTERVAL is 'soon'; it must be a number of seconds"),
            ("INSTRUMENT_INTERVAL", "0", "INSTRUMENT_INTERVAL is '0'; it must be a number of seconds > 0"),
            ("INSTRUMENT_INTERVAL", "nan", "INSTRUMENT_INTERVAL is 'nan'"),
            ("INSTRUMENT_ENABLED", "maybe", "INSTRUMENT_ENABLED is 'maybe'; use true or false"),
            ("INSTRUMENT_BUFFER_SIZE", "1.5", "INSTRUMENT_BUFFER_SIZE is '1.5'; it must be a whole number"),
            ("INSTRUMENT_EXPORTERS", "jsonl,nope", "INSTRUMENT_EXPORTERS: unknown exporter 'nope'; known exporters: "),
            ("INSTRUMENT_CLASSIC_BUCKETS", "db.wait", "INSTRUMENT_CLASSIC_BUCKETS has an entry without 'name=b1,"),
            ("INSTRUMENT_CLASSIC_BUCKETS", "db.wait=0.1,x", "the boundaries of 'db.wait' must be numbers"),
            ("INSTRUMENT_CLASSIC_BUCKETS", "db.wait=0.1,0.1", "the boundaries of 'db.wait' must be distinct finite"),
            ("INSTRUMENT_CLASSIC_BUCKETS", "=0.1", "has an entry without a metric name or unit"),
            ("INSTRUMENT_PROMETHEUS_NATIVE_MAX_BUCKETS", "-1", "must be a whole number >= 0"),
        ],
    )
    def test_malformed_value_names_variable_and_value(self, variable, value, message):
        with pytest.raises(ConfigurationError) as info:
            from_environ({variable: value})
        assert message in str(info.value)

    def test_malformed_variable_is_reported_when_instrument_starts(self):
        """`import instrument` never raises; configure() raises naming the variable; without
        configure(), the first record logs it once and instrumentation stays off."""
        env = {**os.environ, "INSTRUMENT_INTERVAL": "x", "INSTRUMENT_EXPORTERS": "memory"}
        code = (
            "import instrument\n"
            "try:\n"
            "    instrument.configure()\n"
            "except instrument.ConfigurationError as exc:\n"
            "    print('configure:', exc)\n"
            "instrument.count('x'); instrument.count('y')\n"
            "print('enabled:', instrument._record.ENABLED)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert 0 == result.returncode, result.stderr
        assert ["configure: INSTRUMENT_INTERVAL is 'x'; it must be a number of seconds", "enabled: False"] == \
            result.stdout.splitlines()
        assert ["instrument: INSTRUMENT_INTERVAL is 'x'; it must be a number of seconds; instrumentation is off "
                "in this process"] == result.stderr.splitlines()

    def test_unknown_exporter_lists_known_ones(self):
        with pytest.raises(ConfigurationError) as info:
            from_environ({"INSTRUMENT_EXPORTERS": "prometheus2"})
        for known in ("console", "jsonl", "memory", "summary"):
            assert known in str(info.value)


class TestPrecedence:
    def test_arguments_override_environment_override_defaults(self):
        layers = Settings({"INSTRUMENT_INTERVAL": "3", "INSTRUMENT_QUEUE_SIZE": "4"})
        assert 3.0 == layers.current.interval
        assert 2000 == layers.current.cardinality_limit  # default
        arguments, config = layers.prepare({"interval": 7})
        layers.commit(arguments, config)
        assert (7.0, 4) == (layers.current.interval, layers.current.queue_size)
        arguments, config = layers.prepare({"queue_size": 9})  # earlier arguments are kept
        layers.commit(arguments, config)
        assert (7.0, 9) == (layers.current.interval, layers.current.queue_size)


class TestConfigure:
    def test_unknown_option(self):
        with pytest.raises(TypeError, match="unknown option\\(s\\) 'intervall'; known options: enabled, exporters"):
            instrument.configure(intervall=3)

    def test_bad_value_names_the_argument(self):
        with pytest.raises(ConfigurationError, match=r"configure\(interval=...\) is -1"):
            instrument.configure(interval=-1)

    def test_failed_configure_changes_nothing(self):
        before = settings.current
        with pytest.raises(ConfigurationError):
            instrument.configure(interval=5, exporters=["nope"])
        assert before is settings.current

    def test_exporter_objects_are_accepted(self):
        assert from_arguments({"exporters": []}) == {"exporters": ()}
        with pytest.raises(ConfigurationError, match="an exporter is a name or an object"):
            from_arguments({"exporters": [object()]})


def _shown(option) -> str:
    """How docs/configuration.md shows an option's default."""
    if option.shown is not None:
        return option.shown
    default = option.default
    if default is None or default == ():
        return "none"
    if isinstance(default, bool):
        text = str(default).lower()
    elif isinstance(default, tuple):
        text = f"{default[0]}:{default[1]}"
    elif isinstance(default, float) and default.is_integer():
        text = str(int(default))
    else:
        text = str(default)
    return f"`{text}`"


class TestDocumentation:
    def test_the_options_table_is_the_declared_options(self):
        """docs/configuration.md lists exactly the `Config` fields: name, variable, default and help."""
        from pathlib import Path

        from instrument._config import OPTIONS

        text = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
        rows = [line for line in text.splitlines() if line.startswith("| `")]
        documented = [tuple(cell.strip() for cell in row.strip("|").split(" | ")) for row in rows]
        declared = [(f"`{o.name}`", f"`INSTRUMENT_{o.name.upper()}`", _shown(o), o.help) for o in OPTIONS]
        assert declared == documented

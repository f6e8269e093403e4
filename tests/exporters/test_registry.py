"""Exporters are chosen by name, by entry point, or passed as objects."""

from __future__ import annotations

import sys
import textwrap

import pytest

import instrument
from instrument import exporters
from instrument._config import ConfigurationError, settings
from instrument.exporters.jsonl import JsonlExporter


def test_builtin_names_create_their_classes():
    exporter = exporters.create("jsonl", settings.current)
    assert isinstance(exporter, JsonlExporter)
    assert "jsonl" == exporter.name


def test_unknown_name_lists_the_known_ones():
    known = "console, dogstatsd, http, jsonl, memory, otlp, prometheus, statsd, summary"
    with pytest.raises(ValueError, match=f"unknown exporter 'nope'; known exporters: {known}"):
        exporters.check_exporter_spec("nope")


def test_third_party_exporter_through_entry_point(tmp_path, monkeypatch, exported):
    """A package registering under `instrument.exporters` is usable by name."""
    (tmp_path / "thirdparty_exporter.py").write_text(textwrap.dedent("""
        from instrument.exporters import Exporter
        RECEIVED = []
        class Mine(Exporter):
            def export(self, batch):
                RECEIVED.append(batch)
    """))
    dist = tmp_path / "thirdparty_exporter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-exporter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[instrument.exporters]\nmine = thirdparty_exporter:Mine\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "mine" in exporters.available()
    instrument.configure(exporters=["mine", exported])
    instrument.count("registry.thirdparty")
    instrument.flush(5.0)
    received = sys.modules["thirdparty_exporter"].RECEIVED
    assert any(p.name == "registry.thirdparty" for b in received for p in b.points)
    assert "mine" == instrument._pipeline.PIPELINE._workers[0].name


def test_missing_dependency_names_the_pip_install_line(monkeypatch):
    """An exporter whose extra is not installed fails at configuration with the command to run."""
    monkeypatch.setitem(exporters.EXTRAS, "otlp", ("otlp", "opentelemetry_not_installed.exporter"))
    with pytest.raises(ConfigurationError, match=r"exporter 'otlp' needs opentelemetry_not_installed.exporter: "
                                                 r"pip install 'instrument-client\[otlp\]'"):
        instrument.configure(exporters=["otlp"])
    from instrument._config import from_environ

    with pytest.raises(ConfigurationError, match=r"INSTRUMENT_EXPORTERS: exporter 'otlp' needs"):
        from_environ({"INSTRUMENT_EXPORTERS": "otlp"})


def test_exporter_that_fails_to_start_is_a_configuration_error(tmp_path):
    class Broken(exporters.Exporter):
        def __init__(self, config=None):
            raise RuntimeError("cannot connect")

    exporters.BUILTIN["broken-test"] = f"{__name__}:_Broken"
    globals()["_Broken"] = Broken
    try:
        with pytest.raises(ConfigurationError, match="exporter 'broken-test' could not start: cannot connect"):
            instrument.configure(exporters=["broken-test"])
    finally:
        del exporters.BUILTIN["broken-test"]


def test_every_delivery_error_is_an_export_error():
    """One base class for what the built-in exporters raise when a backend does not take a batch."""
    from instrument.exporters import ExportError
    from instrument.exporters.http import HttpExportError
    from instrument.exporters.otlp import OtlpExportError
    from instrument.exporters.prometheus import ForwardingError
    from instrument.exporters.statsd import StatsdExportError

    for error in (HttpExportError, OtlpExportError, ForwardingError, StatsdExportError):
        assert issubclass(error, ExportError), error
    assert issubclass(ForwardingError, ConnectionError) and issubclass(StatsdExportError, OSError)


ACME = textwrap.dedent("""
    from instrument.exporters import Exporter, Option

    def parse_region(name, value, from_env):
        if value not in ("eu", "us"):
            where = "INSTRUMENT_" + name.upper() if from_env else f"configure({name}=...)"
            raise ValueError(f"{where} is {value!r}; use eu or us")
        return value

    CREATED = []

    class Acme(Exporter):
        options = ("interval", Option("eu", parse_region, "where Acme stores metrics", name="acme_region"))

        def __init__(self, config=None):
            super().__init__(config)
            CREATED.append(config.option("acme_region"))

        def export(self, batch):
            pass
""")


@pytest.fixture
def acme(tmp_path, monkeypatch):
    """A third-party exporter `acme` (entry point) that declares an option, `acme_region`."""
    (tmp_path / "acme_exporter.py").write_text(ACME)
    dist = tmp_path / "acme_exporter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-exporter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[instrument.exporters]\nacme = acme_exporter:Acme\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    created = sys.modules.setdefault("acme_exporter", __import__("acme_exporter")).CREATED
    created.clear()
    yield created
    from instrument.testing import reset

    reset()


class TestOptionsAnExporterDeclares:
    def test_configure_takes_them_checks_them_and_recreates_the_exporter_on_change(self, acme):
        instrument.configure(exporters=["acme"])
        instrument.configure(acme_region="us")
        instrument.configure(interval=10.0)  # not one of its options: kept
        assert ["eu", "us"] == acme
        with pytest.raises(ConfigurationError, match=r"configure\(acme_region=\.\.\.\) is 'mars'; use eu or us"):
            instrument.configure(acme_region="mars")
        assert "us" == settings.current.option("acme_region")

    def test_the_environment_sets_them(self, acme, monkeypatch):
        from instrument.testing import reset

        monkeypatch.setenv("INSTRUMENT_ACME_REGION", "us")
        reset()  # reads the variables again
        instrument.configure(exporters=["acme"])
        assert ["us"] == acme

    def test_an_option_no_configured_exporter_declares_is_unknown(self, acme):
        with pytest.raises(TypeError, match=r"unknown option\(s\) 'acme_region'"):
            instrument.configure(acme_region="us")

"""The examples run as their docstrings say, and export what the docs promise."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter

import requests

from tests.helpers import require_module
from tests.integrations.wsgi_servers import Served, server_binary


def instrument_command() -> list[str]:
    """The ``instrument`` console script next to this Python (``python -m instrument`` without it)."""
    script = os.path.join(os.path.dirname(sys.executable), "instrument")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "instrument"]


def test_readme_quickstart_prints_the_summary_and_writes_jsonl(tmp_path):
    """The README's first command: `instrument run -- python examples/quickstart.py`."""
    import json
    import subprocess

    quickstart = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "quickstart.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
    result = subprocess.run(
        [*instrument_command(), "run", "--", sys.executable, quickstart],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert 0 == result.returncode, result.stderr
    assert "instrument summary" in result.stderr
    rows = {line.split()[0] for line in result.stderr.splitlines() if line[:1].isalpha()}
    assert {"main.score_application", "payments.charge", "ledger.flush", "payments.declined"} <= rows
    lines = [json.loads(line) for line in (tmp_path / "instrument-metrics.jsonl").read_text().splitlines()]
    assert 200 == sum(line["count"] for line in lines if line["name"] == "main.score_application")


class TestFlaskService:
    def test_instrument_run_gunicorn_exports_wsgi_db_and_http_client_metrics(self, tmp_path):
        """`instrument run -- gunicorn -w 2 examples.flask_service:app`: requests, SQL and outgoing calls measured."""
        require_module("flask")
        server_binary("gunicorn")
        env = {"GUNICORN_CMD_ARGS": "--bind 127.0.0.1:{port}", "LOANS_DB": str(tmp_path / "loans.sqlite3")}
        served = Served(tmp_path, ["gunicorn", "-w", "2", "examples.flask_service:app"], env=env,
                        launcher=[*instrument_command(), "run", "--"], exporters=None)
        served.env["GUNICORN_CMD_ARGS"] = served.env["GUNICORN_CMD_ARGS"].replace("{port}", str(served.port))
        with served:
            created = requests.post(served.url("/loans"), json={"amount": 1200}, timeout=30)
            loan = created.json()["id"]
            assert 200 == requests.get(served.url("/loans"), timeout=30).status_code
            assert 200 == requests.get(served.url(f"/loans/{loan}"), timeout=30).status_code
            quote = requests.get(served.url(f"/loans/{loan}/quote"), timeout=30)
            assert 0 == served.stop(), served.output()
        assert 201 == created.status_code
        assert {"id": loan, "amount": 1200, "annual_rate": 0.049, "yearly_interest": 58.8} == quote.json()
        assert "instrument summary" in served.output()  # the default exporters: jsonl and the summary

        points = served.points()
        routes = Counter()
        for point in points:
            if point["name"] == "http.server.request.duration":
                routes[(point["tags"]["http.request.method"], point["tags"].get("http.route"))] += point["count"]
        assert {
            ("POST", "/loans"): 1,
            ("GET", "/loans"): 1,
            ("GET", "/loans/<int:loan_id>"): 1,
            ("GET", "/loans/<int:loan_id>/quote"): 1,
            ("GET", "/rates"): 1,  # the outgoing call, served by the other worker
        } == routes
        operations = {point["tags"].get("db.operation.name") for point in points
                      if point["name"] == "db.client.operation.duration"}
        assert {"INSERT", "SELECT"} <= operations
        outgoing = [point for point in points if point["name"] == "http.client.request.duration"]
        assert 1 == sum(point["count"] for point in outgoing)
        assert {"http.request.method": "GET", "server.address": "127.0.0.1", "server.port": served.port,
                "http.response.status_code": 200} == outgoing[0]["tags"]


class TestFastAPIService:
    def test_instrument_run_uvicorn_exports_asgi_db_http_client_and_loop_metrics(self, tmp_path):
        """`instrument run -- uvicorn examples.fastapi_service:app`: requests (with FastAPI's path
        templates), SQL, the outgoing aiohttp call and the event loop's lag measured."""
        require_module("fastapi")
        require_module("aiohttp")
        command = ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", "examples.fastapi_service:app"]
        served = Served(tmp_path, command, env={"LOANS_DB": str(tmp_path / "loans.sqlite3")}, stop=signal.SIGINT,
                        launcher=[*instrument_command(), "run", "--"], exporters=None)
        with served:
            created = requests.post(served.url("/loans"), json={"amount": 1200}, timeout=30)
            loan = created.json()["id"]
            assert 200 == requests.get(served.url("/loans"), timeout=30).status_code
            assert 200 == requests.get(served.url(f"/loans/{loan}"), timeout=30).status_code
            assert 404 == requests.get(served.url("/loans/999"), timeout=30).status_code
            quote = requests.get(served.url(f"/loans/{loan}/quote"), timeout=30)
            assert 0 == served.stop(), served.output()  # Ctrl-C: uvicorn stops, the summary prints
        assert 201 == created.status_code
        assert {"id": loan, "amount": 1200, "annual_rate": 0.049, "yearly_interest": 58.8} == quote.json()
        assert "instrument summary" in served.output()  # the default exporters: jsonl and the summary

        points = served.points()
        routes = Counter()
        for point in points:
            if point["name"] == "http.server.request.duration":
                tags = point["tags"]
                routes[(tags["http.request.method"], tags.get("http.route"), tags["http.response.status_code"])] += \
                    point["count"]
        assert {
            ("POST", "/loans", 201): 1,
            ("GET", "/loans", 200): 1,
            ("GET", "/loans/{loan_id}", 200): 1,
            ("GET", "/loans/{loan_id}", 404): 1,
            ("GET", "/loans/{loan_id}/quote", 200): 1,
            ("GET", "/rates", 200): 1,  # the outgoing call, answered by the same worker
        } == routes
        operations = {point["tags"].get("db.operation.name") for point in points
                      if point["name"] == "db.client.operation.duration"}
        assert {"INSERT", "SELECT"} <= operations
        outgoing = [point for point in points if point["name"] == "http.client.request.duration"]
        assert 1 == sum(point["count"] for point in outgoing)
        assert {"http.request.method": "GET", "server.address": "127.0.0.1", "server.port": served.port,
                "http.response.status_code": 200} == outgoing[0]["tags"]
        assert sum(point["count"] for point in points if point["name"] == "asyncio.event_loop.lag") >= 1

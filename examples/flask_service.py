"""A small loan service to try instrument's auto-instrumentation on.

    pip install 'instrument-client' flask gunicorn requests
    instrument run -- gunicorn -w 2 examples.flask_service:app

(from the repository root; ``--bind 127.0.0.1:8000`` is gunicorn's default). Nothing
here mentions instrument: ``instrument run`` measures every request gunicorn serves
(``http.server.request.duration``, tagged with Flask's route templates such as
``/loans/<int:loan_id>``), every SQLite statement (``db.client.operation.duration``)
and every outgoing HTTP call (``http.client.request.duration``). On exit the
summary table is printed and the aggregates are in ./instrument-metrics.jsonl.

    curl -X POST -H 'Content-Type: application/json' -d '{"amount": 1200}' localhost:8000/loans
    curl localhost:8000/loans
    curl localhost:8000/loans/1/quote      # calls the rates service over HTTP

The rates service is ``RATES_URL``; by default this service's own ``/rates`` endpoint,
so the example works offline. Calling itself needs a second worker (or thread) free
to answer, hence ``-w 2``. The database is ``LOANS_DB`` (default: loans.sqlite3 in
the system's temporary directory).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile

import requests
from flask import Flask, abort, g, jsonify, request

DATABASE = os.environ.get("LOANS_DB", os.path.join(tempfile.gettempdir(), "loans.sqlite3"))
RATES_URL = os.environ.get("RATES_URL")  # None: this service's own /rates

app = Flask(__name__)


def db() -> sqlite3.Connection:
    """This request's connection (opened on first use, closed when the request ends)."""
    if "db" not in g:
        g.db = sqlite3.connect(DATABASE, timeout=10)
        g.db.execute("CREATE TABLE IF NOT EXISTS loans (id INTEGER PRIMARY KEY, amount REAL NOT NULL)")
    return g.db


@app.teardown_appcontext
def close_db(exc: BaseException | None) -> None:
    connection = g.pop("db", None)
    if connection is not None:
        connection.close()


@app.get("/loans")
def list_loans():
    rows = db().execute("SELECT id, amount FROM loans ORDER BY id").fetchall()
    return jsonify([{"id": loan_id, "amount": amount} for loan_id, amount in rows])


@app.post("/loans")
def create_loan():
    amount = (request.get_json(silent=True) or {}).get("amount")
    if not isinstance(amount, (int, float)) or amount <= 0:
        abort(400, description="amount must be a positive number")
    with db():
        cursor = db().execute("INSERT INTO loans (amount) VALUES (?)", (amount,))
    return jsonify({"id": cursor.lastrowid, "amount": amount}), 201


@app.get("/loans/<int:loan_id>")
def get_loan(loan_id: int):
    row = db().execute("SELECT id, amount FROM loans WHERE id = ?", (loan_id,)).fetchone()
    if row is None:
        abort(404)
    return jsonify({"id": row[0], "amount": row[1]})


@app.get("/loans/<int:loan_id>/quote")
def quote(loan_id: int):
    row = db().execute("SELECT amount FROM loans WHERE id = ?", (loan_id,)).fetchone()
    if row is None:
        abort(404)
    rates_url = RATES_URL or request.host_url.rstrip("/") + "/rates"
    try:
        response = requests.get(rates_url, timeout=5)
        response.raise_for_status()
    except requests.RequestException as exc:
        return jsonify({"error": f"rates service unavailable: {type(exc).__name__}"}), 502
    rate = response.json()["annual_rate"]
    return jsonify({"id": loan_id, "amount": row[0], "annual_rate": rate, "yearly_interest": round(row[0] * rate, 2)})


@app.get("/rates")
def rates():
    """Stands in for an external rates service."""
    return jsonify({"annual_rate": 0.049})

"""A small asynchronous loan service to try instrument's auto-instrumentation on.

    pip install 'instrument-client' fastapi uvicorn aiohttp
    instrument run -- uvicorn examples.fastapi_service:app

(from the repository root; uvicorn listens on 127.0.0.1:8000 by default; ``--workers 2``
works the same). Nothing here mentions instrument: ``instrument run`` measures every
request uvicorn serves (``http.server.request.duration``, tagged with FastAPI's path
templates such as ``/loans/{loan_id}``), every SQLite statement
(``db.client.operation.duration``), every outgoing aiohttp call
(``http.client.request.duration``) and how late the event loop runs
(``asyncio.event_loop.lag``). On exit the summary table is printed and the aggregates are
in ./instrument-metrics.jsonl.

    curl -X POST -H 'Content-Type: application/json' -d '{"amount": 1200}' localhost:8000/loans
    curl localhost:8000/loans
    curl localhost:8000/loans/1/quote      # calls the rates service over HTTP

The rates service is ``RATES_URL``; by default this service's own ``/rates`` endpoint, so
the example works offline (one asynchronous worker answers its own call). The database is
``LOANS_DB`` (default: loans.sqlite3 in the system's temporary directory); its statements
run in FastAPI's thread pool (the path operations that use it are plain functions), so
they never block the event loop.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator

import aiohttp
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, PositiveFloat

DATABASE = os.environ.get("LOANS_DB", os.path.join(tempfile.gettempdir(), "loans.sqlite3"))
RATES_URL = os.environ.get("RATES_URL")  # None: this service's own /rates

app = FastAPI(title="loans")


Loan = dict[str, int | float]


class NewLoan(BaseModel):
    amount: PositiveFloat


def db() -> Iterator[sqlite3.Connection]:
    """A connection for one request, closed when it ends."""
    connection = sqlite3.connect(DATABASE, timeout=10, check_same_thread=False)
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS loans (id INTEGER PRIMARY KEY, amount REAL NOT NULL)")
        yield connection
    finally:
        connection.close()


# A default rather than `Annotated[sqlite3.Connection, Depends(db)]`, which needs FastAPI 0.95:
# the example runs on every FastAPI we support (tox -e floors runs it on the lowest).
Database = Depends(db)


@app.get("/loans")
def list_loans(connection: sqlite3.Connection = Database) -> list[Loan]:
    rows = connection.execute("SELECT id, amount FROM loans ORDER BY id").fetchall()
    return [{"id": loan_id, "amount": amount} for loan_id, amount in rows]


@app.post("/loans", status_code=201)
def create_loan(loan: NewLoan, connection: sqlite3.Connection = Database) -> Loan:
    with connection:
        cursor = connection.execute("INSERT INTO loans (amount) VALUES (?)", (loan.amount,))
    return {"id": cursor.lastrowid or 0, "amount": loan.amount}


def amount_of(loan_id: int, connection: sqlite3.Connection) -> float:
    row = connection.execute("SELECT amount FROM loans WHERE id = ?", (loan_id,)).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail=f"no loan {loan_id}")
    return float(row[0])


@app.get("/loans/{loan_id}")
def get_loan(loan_id: int, connection: sqlite3.Connection = Database) -> Loan:
    return {"id": loan_id, "amount": amount_of(loan_id, connection)}


@app.get("/loans/{loan_id}/quote")
async def quote(loan_id: int, request: Request, connection: sqlite3.Connection = Database) -> Loan:
    amount = amount_of(loan_id, connection)
    rates_url = RATES_URL or str(request.base_url).rstrip("/") + "/rates"
    try:
        async with aiohttp.ClientSession() as session, session.get(rates_url, timeout=aiohttp.ClientTimeout(5)) as r:
            r.raise_for_status()
            rate = float((await r.json())["annual_rate"])
    except aiohttp.ClientError as exc:
        raise HTTPException(status_code=502, detail=f"rates service unavailable: {type(exc).__name__}") from exc
    return {"id": loan_id, "amount": amount, "annual_rate": rate, "yearly_interest": round(amount * rate, 2)}


@app.get("/rates")
async def rates() -> Loan:
    """Stands in for an external rates service."""
    return {"annual_rate": 0.049}

"""Traffic for the Flask example service, to have something to report on.

    instrument run --interval 5 -- gunicorn -w 2 examples.flask_service:app &
    python examples/flask_traffic.py --seconds 180
    kill -INT %1
    instrument report instrument-metrics.jsonl --html report.html

Sends a mix of requests from a few threads: loans created, listed, read and quoted
(a quote calls the service's own /rates over HTTP), with some bad input (400) and
unknown loans (404), and a burst of load in the middle of the run.
"""

from __future__ import annotations

import argparse
import random
import threading
import time

import requests


def client(base: str, until: float, rng: random.Random, busy: threading.Event) -> None:
    """One user: a request, then a pause, shorter while *busy*."""
    session = requests.Session()
    loans: list[int] = []
    while time.monotonic() < until:
        choice = rng.random()
        if choice < 0.15 or not loans:
            created = session.post(f"{base}/loans", json={"amount": rng.randint(100, 5000)}, timeout=10)
            if created.status_code == 201:
                loans.append(created.json()["id"])
        elif choice < 0.20:
            session.post(f"{base}/loans", json={"amount": -1}, timeout=10)  # 400
        elif choice < 0.40:
            session.get(f"{base}/loans", timeout=10)
        elif choice < 0.70:
            session.get(f"{base}/loans/{rng.choice(loans)}", timeout=10)
        elif choice < 0.75:
            session.get(f"{base}/loans/{10**6 + rng.randint(0, 99)}", timeout=10)  # 404
        else:
            session.get(f"{base}/loans/{rng.choice(loans)}/quote", timeout=10)
        time.sleep(rng.uniform(0.0, 0.05 if busy.is_set() else 0.4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    start = time.monotonic()
    until = start + args.seconds
    busy = threading.Event()
    threads = [
        threading.Thread(target=client, args=(args.url, until, random.Random(args.seed + n), busy))
        for n in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(args.seconds * 0.4)
    busy.set()  # the burst: a fifth of the run at up to eight times the rate
    time.sleep(args.seconds * 0.2)
    busy.clear()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()

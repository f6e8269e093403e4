"""A tiny "service" to try instrument on.

    pip install . && instrument run -- python examples/quickstart.py

prints a latency table when it exits and appends the raw aggregates to
./instrument-metrics.jsonl. Nothing here configures exporters: `instrument run`
picks the defaults (jsonl and the exit summary).
"""

import asyncio
import random
import time

import instrument


@instrument.timed  # metric name: main.score_application
def score_application(income: float, debt: float) -> float:
    time.sleep(random.uniform(0.0005, 0.002))
    return max(0.0, 1.0 - debt / max(income, 1.0))


@instrument.timed("payments.charge", tags={"provider": "acme"})
async def charge(amount: float) -> str:
    await asyncio.sleep(random.uniform(0.001, 0.004))
    if amount > 900:
        raise ValueError("limit exceeded")  # recorded with error=ValueError
    return "ok"


async def main() -> None:
    random.seed(18)  # the same amounts every run: docs/getting-started.md shows this run's table
    for _ in range(200):
        score = score_application(random.uniform(1000, 9000), random.uniform(0, 5000))
        instrument.record("application.score", score)
        amount = random.uniform(1, 1000)
        try:
            await charge(amount)
        except ValueError:
            instrument.count("payments.declined", tags={"reason": "limit"})
        with instrument.timer("ledger.flush", tags={"table": "loans"}):
            time.sleep(0.0002)
    instrument.gauge("queue.depth", random.randint(0, 50))


if __name__ == "__main__":
    asyncio.run(main())

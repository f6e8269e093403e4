"""What your backend shows: quantiles computed by each backend path against the exact ones.

Run with ``python tests/benchmarks/bench_quantiles.py`` (needs the ``prometheus`` binary;
also in ``tox -e bench``). Three forked workers record latencies (log-normal, median
50 ms, p99 about 100 ms, as the web service of issue 14) into one Prometheus endpoint;
the real Prometheus server scrapes it twice, with native histograms on and off, and
``histogram_quantile`` is compared with the exact quantile (nearest rank) of the
recorded values. Beside it, from the same values:

- classic buckets at powers of two (the old default) and of 2**(1/4) (configured with
  ``classic_buckets``), through Prometheus too;
- OTLP's exponential histogram: the quantile read from the exported buckets (the
  bucket's middle, as `HistogramData.quantile` and ``instrument report`` do);
- StatsD: Etsy's percentile rule (``upper_90``) over the stand-in values we send.
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import instrument
from instrument._config import Config
from instrument._histogram import HistogramState
from instrument.exporters.prometheus import PrometheusExporter
from instrument.exporters.statsd import _stand_ins
from tests.exporters.prometheus_support import PrometheusServer

QUANTILES = (0.5, 0.9, 0.99)
WORKERS, PER_WORKER = 3, 3000


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def etsy(values: list[tuple[float, int]], q: float) -> float:
    """Etsy statsd's upper_PCT: the value at index round(q * count) - 1 of the sorted values."""
    expanded = sorted(v for value, weight in values for v in [value] * weight)
    return expanded[max(1, round(q * len(expanded))) - 1]


def main() -> None:
    generators = [random.Random(seed) for seed in range(WORKERS)]
    data = [[rng.lognormvariate(math.log(0.05), 0.3) for _ in range(PER_WORKER)] for rng in generators]
    everything = [value for values in data for value in values]
    classic = {
        "q.pow2": tuple(2.0**k for k in range(-17, 7)),  # the old default, 24 boundaries
        "q.root4": tuple(2.0 ** (k / 4) for k in range(-56, 25)),  # 61 us .. 64 s, 81 boundaries
    }
    exporter = PrometheusExporter(Config(prometheus_address=("127.0.0.1", 0), classic_buckets=classic))
    instrument.configure(exporters=[exporter])
    children = []
    for values in data:
        pid = os.fork()
        if pid == 0:
            try:
                for value in values:
                    instrument.record("q.latency", value, unit="s")
                    instrument.record("q.pow2", value, unit="s")
                    instrument.record("q.root4", value, unit="s")
                instrument.flush(10.0)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    host, port = exporter.address
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as native_dir, tempfile.TemporaryDirectory() as classic_dir:
        native = PrometheusServer("prometheus", Path(native_dir), [f"{host}:{port}"], ("native-histograms",))
        classic = PrometheusServer("prometheus", Path(classic_dir), [f"{host}:{port}"])
        try:
            native.wait_ready()
            classic.wait_ready()
            native.wait_for_value("histogram_count(q_latency_seconds)", len(everything))
            classic.wait_for_value("q_latency_seconds_count", len(everything))
            classic.wait_for_value("q_pow2_seconds_count", len(everything))
            classic.wait_for_value("q_root4_seconds_count", len(everything))
            time.sleep(2)  # a second scrape of each, so both series are current
            queries = (
                ("Prometheus native histogram", native, "histogram_quantile({q}, q_latency_seconds)"),
                ("Prometheus classic, powers of sqrt(2) (default)", classic,
                 "histogram_quantile({q}, q_latency_seconds_bucket)"),
                ("Prometheus classic, powers of 2 (before)", classic, "histogram_quantile({q}, q_pow2_seconds_bucket)"),
                ("Prometheus classic, powers of 2^(1/4) (configured)", classic,
                 "histogram_quantile({q}, q_root4_seconds_bucket)"),
            )
            for label, server, expression in queries:
                rows[label] = [float(server.query(expression.format(q=q))[0]["value"][1]) for q in QUANTILES]
        finally:
            native.stop()
            classic.stop()
    state = HistogramState()
    state.add_many(everything)
    histogram = state.freeze()
    rows["OTLP exponential histogram (bucket middle)"] = [histogram.quantile(q) for q in QUANTILES]
    stand_ins = _stand_ins(histogram, 1.0)
    rows["StatsD / DogStatsD (Etsy's upper_PCT over what we send)"] = [etsy(stand_ins, q) for q in QUANTILES]
    truth = [exact(everything, q) for q in QUANTILES]
    print(f"{len(everything)} values from {WORKERS} workers; exact p50 / p90 / p99: "
          + " / ".join(f"{t * 1000:.2f} ms" for t in truth))
    print("| path | p50 | p90 | p99 |")
    print("|---|---|---|---|")
    for label, found in rows.items():
        cells = [f"{v * 1000:.2f} ms ({(v - t) / t:+.2%})" for v, t in zip(found, truth, strict=True)]
        print(f"| {label} | " + " | ".join(cells) + " |")
    instrument.configure(exporters=[])
    exporter.shutdown()


if __name__ == "__main__":
    main()

"""`prometheus`: a scrape endpoint with the totals of this process and of its forked workers.

Serves ``http://HOST:PORT/metrics`` (``prometheus_address``, default 127.0.0.1:9464)
from a small threaded `http.server` on a daemon thread: the Prometheus text format
0.0.4, OpenMetrics 1.0 when the scraper's ``Accept`` header asks for
``application/openmetrics-text``, or the protobuf format with every histogram also
as a native histogram when it asks for that (Prometheus with native histograms on).
Batches are deltas; the endpoint folds them into cumulative series (`Cumulative`):
counters and histograms only grow, gauges keep the last value set (by whichever
worker set it last). Scrapes are live (`_pull`): a scrape asks this process and every
worker for what they recorded since, through a counter in shared memory their
collectors look at every ``live_interval`` (0.1 s), and waits for their answers; so
it shows what was recorded up to about that long before it, not an ``interval``.

Pre-fork servers (gunicorn, uwsgi, multiprocessing): the process that creates the
exporter owns the endpoint, with everything set up at construction. The exporter is
eager: created when instrument starts (``configure()``, or ``instrument run``'s
start-up), not at the first export, so a pre-fork master that starts instrument has
the endpoint before it forks workers. In a forked child the
same exporter forwards: ``export()`` sends the child's delta points to the endpoint's
process, which folds them into the same state (an additive gauge, such as
``http.server.active_requests``, per worker pid: the endpoint serves the sum over the
live ones; see `Cumulative`). So one endpoint serves the sum over all workers, past
and present; nothing is written to disk and there is one port.

One job per module, as prometheus_client splits exposition, negotiation, serving and
multiprocess support:

- `_exporter`: `PrometheusExporter`, its roles (endpoint, forwarder, inert) and fork handling
- `_naming`: Prometheus names and labels of our metrics, for every format
- `_text`: the text format and OpenMetrics: ``le`` buckets, numbers, `render`
- `_protobuf`: the protobuf format (MetricFamily messages), `render_protobuf`
- `_native`: our exponential buckets as a native histogram's schema, spans and deltas
- `_wire`: protobuf's wire encoding, the few primitives `_protobuf` needs
- `_compat`: prometheus_client's default ``process_*`` and ``python_*`` series
- `_pull`: a scrape asking every process for its records, and waiting for the answers
- `_negotiation`: which format and encoding the scraper's headers ask for
- `_endpoint`: the owning process's HTTP server, forwarding listener and state, start to stop
- `_forwarding`: a worker sending its points to the endpoint's process, and that process receiving them
- `_frames`: the wire format of forwarding (points in `instrument._model`'s codec)
- `_registry`: who serves an address: this process, or an ancestor (by fork or by exec)
- `_ancestry`: descendants and peers (``/proc``, ``SO_PEERCRED``) the endpoint trusts
- `_servers`: what the two listeners share: tracked connections, closing a child's copies
"""

from __future__ import annotations

from ..._buckets import DEFAULT_CLASSIC_BOUNDS
from ._exporter import DEFAULT_ADDRESS, PrometheusExporter
from ._forwarding import ForwardingError
from ._registry import ENDPOINTS_VARIABLE

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_CLASSIC_BOUNDS", "ENDPOINTS_VARIABLE", "ForwardingError", "PrometheusExporter"]

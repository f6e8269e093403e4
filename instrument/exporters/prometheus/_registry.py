"""Who serves an address: this process's endpoints, and the ones its ancestors serve.

An exporter created for an address either serves it (the first in its process
creates the `Endpoint`, the others share it) or forwards to the process serving it.
Three ways to know that an ancestor serves it:

- **fork**: this module's fork hook (and the exporters' own, for their endpoint) turns
  the endpoints of the parent into forwarding targets of the child, after closing the
  child's copies of their sockets. A grandchild forwards to the same process, since
  the targets are inherited in turn. An exporter created anew in a child for an
  address an ancestor serves (an application calling ``configure()`` in each worker)
  forwards as well.
- **exec**: processes started with exec inherit no Python objects, so the endpoint's
  process also names its endpoints in the environment variable `ENDPOINTS_VARIABLE`
  (pid, abstract socket, port and host of each). An exporter created in a process that
  descends from that pid, for the same host and port, forwards there:
  multiprocessing's spawn and forkserver workers, Python subprocesses. A process that
  is not a descendant ignores the variable, however it got it. (A server that
  re-executes itself as a child, gunicorn's USR2, forwards to the old master until that
  exits, then has no endpoint: nothing takes the port over.)
"""

from __future__ import annotations

import os
import socket
import threading

from ._ancestry import descends_from
from ._endpoint import Endpoint
from ._forwarding import FORWARD_TIMEOUT, Target

__all__ = ["ENDPOINTS_VARIABLE", "release", "serve_or_forward"]

# Set by an endpoint's process for the processes it starts (not a configuration option):
# "PID,SOCKET,PORT,HOST" per endpoint, ";" between them.
ENDPOINTS_VARIABLE = "_INSTRUMENT_PROMETHEUS_ENDPOINTS"

# Endpoints of this process by configured address (and by the address each got, which
# differs for port 0), and the forwarding targets this process inherited by fork.
_endpoints: dict[tuple[str, int], Endpoint] = {}
_targets: dict[tuple[str, int], Target] = {}
_lock = threading.Lock()


def serve_or_forward(address: tuple[str, int]) -> Endpoint | Target:
    """This process's endpoint for *address* (one more user of it), or the ancestor's to forward to.

    OSError when this process should serve *address* and cannot listen there. Port 0
    always starts an endpoint of its own.
    """
    with _lock:
        target = _targets.get(address) or _inherited_target(address)
        if target is not None:
            return target
        endpoint = _endpoints.get(address) if address[1] else None
        if endpoint is None:
            endpoint = Endpoint(address)
            _endpoints[endpoint.address] = endpoint
            if address[1]:
                _endpoints[address] = endpoint
            _publish()
        endpoint.users += 1
        return endpoint


def release(endpoint: Endpoint) -> None:
    """One user fewer; the last one stops the endpoint's servers."""
    with _lock:
        endpoint.users -= 1
        last = endpoint.users <= 0
        if last:
            for address in [a for a, e in _endpoints.items() if e is endpoint]:
                del _endpoints[address]
    if last:
        endpoint.stop()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # may have been held by a thread the child does not have
    for address, endpoint in list(_endpoints.items()):
        endpoint.drop_in_child()
        if endpoint.forward_address is not None:
            target = Target(endpoint.forward_address, endpoint.pid, endpoint.pulls)
            _targets[address] = target
            _targets[endpoint.address] = target
    _endpoints.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _publish() -> None:
    """Name this process's endpoints in the environment its new processes inherit.

    Entries of ancestors stay (a grandchild started by a worker forwards to the
    endpoint's process too); this process's entries are those of its running
    endpoints. Called with `_lock` held, when an endpoint starts only: the
    environment is not changed at shutdown, which may run on a background thread
    while another thread reads the environment in C (getaddrinfo) without the GIL.
    An entry left by a stopped endpoint is skipped by `_inherited_target`.
    """
    mine = os.getpid()
    kept = [entry for entry in _read_endpoints_variable() if entry[0] != mine]
    for endpoint in dict.fromkeys(_endpoints.values()):
        if endpoint.forward_address is not None:
            kept.append((mine, endpoint.forward_address, endpoint.address[1], endpoint.address[0]))
    text = ";".join(f"{pid},{name.lstrip(chr(0))},{port},{host}" for pid, name, port, host in kept)
    if text:
        os.environ[ENDPOINTS_VARIABLE] = text
    else:
        os.environ.pop(ENDPOINTS_VARIABLE, None)


def _read_endpoints_variable() -> list[tuple[int, str, int, str]]:
    entries = []
    for entry in os.environ.get(ENDPOINTS_VARIABLE, "").split(";"):
        parts = entry.split(",", 3)
        if len(parts) == 4 and parts[0].isdigit() and parts[2].isdigit():
            entries.append((int(parts[0]), "\0" + parts[1], int(parts[2]), parts[3]))
    return entries


def _inherited_target(address: tuple[str, int]) -> Target | None:
    """The endpoint an ancestor serves at *address*, found through the environment.

    This is how processes started with exec (multiprocessing's spawn and forkserver
    workers, a subprocess running Python, a re-executed server) find it. Only a
    descendant of the endpoint's process uses an entry: a process that merely copied
    the environment is independent, and binds (or warns) as any other.
    """
    mine = os.getpid()
    for pid, name, port, host in _read_endpoints_variable():
        if (host, port) == address and pid != mine and descends_from(mine, pid) and _accepting(name):
            return Target(name, pid)
    return None


def _accepting(name: str) -> bool:
    """Whether an endpoint still listens on abstract socket *name* (it may have stopped)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(FORWARD_TIMEOUT)
    try:
        probe.connect(name)
    except OSError:
        return False
    finally:
        probe.close()
    return True

"""Which processes the endpoint trusts: its descendants, and peers of its own user.

Read from Linux's ``/proc/PID/stat`` (the parent pid) and ``SO_PEERCRED`` (the pid
and user at the other end of a Unix socket). Used on both sides of forwarding: the
endpoint's process takes metrics only from peers of its own user (or root) or from
its descendants (workers that switched user); a process started with exec forwards
only to an endpoint of one of its ancestors (see `_registry`).
"""

from __future__ import annotations

import os
import socket
import struct

__all__ = ["descends_from", "peer", "peer_trusted"]

_MAX_DEPTH = 64  # parents followed before giving up: deeper trees are not ours


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether process *pid* is *ancestor* or one of its descendants (False if unknown)."""
    for _ in range(_MAX_DEPTH):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                # The command name, in parentheses, may hold spaces and ")": the parent
                # pid is the second field after its last ")".
                pid = int(stat.read().rpartition(b")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def peer(conn: socket.socket) -> tuple[int, int] | None:
    """``(pid, uid)`` of the process at the other end of a Unix socket, if the system says."""
    try:
        size = struct.calcsize("3i")
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))
    except (AttributeError, OSError, struct.error):
        return None
    return pid, uid


def peer_trusted(found: tuple[int, int] | None) -> bool:
    """Peers of this user or root, or descendants of this process (workers may change user)."""
    if found is None:
        return False
    pid, uid = found
    return uid in (os.geteuid(), 0) or descends_from(pid, os.getpid())

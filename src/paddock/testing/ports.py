"""Free TCP port allocation on loopback.

Ports are found by binding to port 0, and every port handed out in this process
is remembered so two ensembles started by the same test run never collide even
though the probing sockets are closed before the servers bind.
"""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct ports on ``host`` that were free a moment ago."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    with _lock:
        try:
            while len(ports) < count:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind((host, 0))
                port = s.getsockname()[1]
                if port in _handed_out:
                    continue
                _handed_out.add(port)
                ports.append(port)
        finally:
            for s in sockets:
                s.close()
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """Return one port on ``host`` that was free a moment ago."""
    return free_ports(1, host)[0]

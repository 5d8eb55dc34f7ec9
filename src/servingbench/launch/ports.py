"""Loopback ports: pick free ones, or check that a chosen one is free."""
from __future__ import annotations

import socket

from servingbench.errors import ServingbenchError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all sockets stay bound until every port is picked, so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ensure_port_free(port: int) -> int:
    """The port, if nothing listens on it. Connections of an earlier server lingering in TIME_WAIT don't
    count: the servers bind with SO_REUSEADDR, and so does this check."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            raise ServingbenchError(f"port {port} on {LOOPBACK} is in use; pick another or stop what holds it") from None
    return port

"""The listening sockets of ``python -m api``: whether the port is free before anything starts,
and each API process's own socket on the shared port (``SO_REUSEPORT``)."""

from __future__ import annotations

import errno
import socket


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_taken(host: str, port: int) -> bool:
    """Whether another socket holds ``host:port`` (EADDRINUSE; other bind errors, such as an
    address this machine lacks, are the server's to report)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def in_use(host: str, port: int) -> str:
    """Why the API cannot start on a taken port, and the next free one to start it on."""
    free = next(
        (p for p in range(port + 1, min(port + 100, 65535) + 1) if port_is_free(host, p)), None
    )
    other = f"PORT={free}" if free is not None else "PORT=<a free port>"
    return f"{host}:{port} is in use; start it on another port with {other} just serve"


def reuse_port_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket of this process alone: the kernel spreads connections among the
    processes that bind the same port this way (one shared socket let one take nearly all)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock

"""Refuse network connections in-process.

Dry-run promises that nothing leaves the machine; this module enforces it rather
than trusting every code path to remember. ``no_network()`` patches the socket
layer so any connect, send-to or DNS lookup raises :class:`NetworkForbidden`.
The test suite uses the same guard with ``allow_loopback=True`` so a test that
reaches any host other than the local fakes fails loudly.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any


class NetworkForbidden(RuntimeError):
    """A connection was attempted where the network is off limits."""


_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def no_network(*, allow_loopback: bool = False,
               allow: Iterable[tuple[str, int]] = ()) -> Iterator[list[str]]:
    """Within the block, refuse every outbound connection (or every non-loopback one).

    ``allow`` names the ``(host, port)`` pairs still reachable: a dry-run keeps
    exactly one, its PostgreSQL database. Yields a list that collects a
    description of each refused attempt.
    """
    exceptions = {(host, int(port)) for host, port in allow}
    hosts = {host for host, _ in exceptions}
    for host, port in list(exceptions):  # the database by name is reached at its addresses
        with suppress(OSError):
            exceptions |= {(str(info[4][0]), port)
                           for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    refused: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def allowed(address: Any) -> bool:
        if isinstance(address, tuple) and len(address) >= 2 and (address[0], address[1]) in exceptions:
            return True
        return allow_loopback and _is_loopback(address)

    def refuse(what: str) -> NetworkForbidden:
        refused.append(what)
        scope = "a non-loopback host" if allow_loopback else "the network"
        return NetworkForbidden(f"network access refused ({scope}): {what}")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            raise refuse(f"connect {address!r}")
        real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            raise refuse(f"connect {address!r}")
        return real_connect_ex(self, address)

    def guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
        address = args[-1]
        if not allowed(address):
            raise refuse(f"sendto {address!r}")
        return real_sendto(self, data, *args)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in hosts and not allowed((host, 0)):
            raise refuse(f"resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = guarded_sendto  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield refused
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
        socket.socket.sendto = real_sendto  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo

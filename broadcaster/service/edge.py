"""The edge of ``serve``: TLS it terminates itself, the refusal to listen in the clear on a public address,
and forwarded headers honoured only from a trusted reverse proxy.

Bearer tokens must never cross a network in the clear: ``serve`` on an address
other than loopback needs ``--tls-cert/--tls-key`` (TLS 1.2 or newer), or
``--insecure-http`` said out loud (a proxy on the same private network that
terminates TLS itself, say).

Behind nginx or caddy every request comes from the proxy's address. With
``--trusted-proxy ADDR|CIDR`` the client's address is taken from
``X-Forwarded-For`` (the nearest hop that is not itself a trusted proxy) and the
scheme from ``X-Forwarded-Proto``, but only on connections from a trusted peer:
anyone else could write those headers, so from them they are ignored. Every use
of ``request.remote`` (failed logins per source, the audit) then sees the client.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from broadcaster.errors import InputError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def trusted_networks(values: Sequence[str]) -> list[Network]:
    """``--trusted-proxy`` values (an address or a CIDR) as networks; a bad one is named."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise InputError(f"not an IP address or CIDR network: {value!r} (e.g. 127.0.0.1 or 10.0.0.0/8)",
                             where="--trusted-proxy") from None
    return networks


def is_loopback(host: str) -> bool:
    """True for a loopback address or ``localhost``; any other name or address is public here."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, tls: bool, insecure_http: bool) -> None:
    """Refuse plain HTTP on a non-loopback address unless the operator said ``--insecure-http``."""
    if not tls and not insecure_http and not is_loopback(host):
        raise InputError(f"refusing to serve plain HTTP on {host}, which is not a loopback address: bearer tokens "
                         "would cross the network in the clear; give --tls-cert and --tls-key, put a TLS proxy in "
                         "front (--host 127.0.0.1 --trusted-proxy 127.0.0.1), or pass --insecure-http",
                         where="--host")


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or newer) from PEM files, or None for plain HTTP."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InputError("give both --tls-cert and --tls-key", where="--tls-cert" if cert is None else "--tls-key")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}", where=flag)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise InputError(f"cannot use this certificate and key ({reason}): a PEM certificate (chain) and its "
                         "unencrypted PEM private key are needed", where="--tls-cert/--tls-key") from None
    return context


def forwarded_middleware(trusted: Sequence[Network]) -> Middleware:
    """A middleware that takes the client's address and scheme from a trusted proxy's forwarded headers."""

    def is_trusted(address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_trusted(request.remote):
            return await handler(request)  # from anyone else, forwarded headers are the client's own words
        changes: dict[str, str] = {}
        hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
        for hop in reversed([h for h in hops if h]):
            if not _is_address(hop):
                break  # not an address: nothing beyond it can be believed
            changes["remote"] = hop
            if not is_trusted(hop):
                break  # the nearest address no trusted proxy vouches beyond
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        return await handler(request.clone(**changes) if changes else request)  # type: ignore[arg-type]

    return forwarded


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

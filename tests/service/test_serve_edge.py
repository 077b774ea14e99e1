"""``serve`` at the network's edge: TLS it terminates itself, no plain HTTP on a public address unless asked,
and forwarded headers believed only from a trusted proxy."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.cli import main
from broadcaster.cli.output import EXIT_INVALID
from broadcaster.service.edge import forwarded_middleware, is_loopback, trusted_networks
from tests.engine.providers import Providers
from tests.service.support import Api, serving
from tests.service.test_tokens import free_port


def test_serve_refuses_plain_http_on_a_public_address(
    providers: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``serve --host 0.0.0.0`` served bearer tokens over plain HTTP to the whole network."""
    for host in ("0.0.0.0", "192.0.2.10", "::", "broadcaster.example.org"):
        assert main(providers.cli("serve", "--host", host, "--port", "9")) == EXIT_INVALID
        out, err = capsys.readouterr()
        flat = " ".join(err.split())
        assert f"--host: refusing to serve plain HTTP on {host}" in flat, err
        assert "--insecure-http" in flat and "Traceback" not in err and "serving on" not in out


def test_tls_flags_are_checked_before_anything_listens(
    providers: Providers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n", encoding="utf-8")
    assert main(providers.cli("serve", "--tls-cert", str(cert))) == EXIT_INVALID
    assert "give both --tls-cert and --tls-key" in capsys.readouterr().err
    assert main(providers.cli("serve", "--tls-cert", str(cert), "--tls-key", str(tmp_path / "none.pem"))) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(providers.cli("serve", "--tls-cert", str(cert), "--tls-key", str(cert))) == EXIT_INVALID
    assert "cannot use this certificate and key" in " ".join(capsys.readouterr().err.split())
    assert main(providers.cli("serve", "--trusted-proxy", "nginx.local")) == EXIT_INVALID
    assert "--trusted-proxy: not an IP address or CIDR network: 'nginx.local'" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@given(st.ip_addresses())
def test_an_address_is_loopback_exactly_when_the_ip_says_so(address: Any) -> None:
    assert is_loopback(str(address)) == address.is_loopback


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert trusted_networks(["127.0.0.1", "10.0.0.0/8", "fd00::/8"]) == [
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.slow
def test_serve_terminates_tls_with_a_certificate_a_client_verifies(providers: Providers, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", *providers.cli("serve", "--port", str(port), "--tls-cert", str(cert),
                                                             "--tls-key", str(key))],
        env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        verified = ssl.create_default_context(cafile=str(ca_file))
        assert _until_served(f"https://127.0.0.1:{port}/api/openapi.json", verified, server) == 200
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                verified.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # not our CA: the handshake is refused
            _get(f"https://127.0.0.1:{port}/api/openapi.json", ssl.create_default_context())
        with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served on that port
            _get(f"http://127.0.0.1:{port}/api/openapi.json", None)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert f"serving on https://127.0.0.1:{port}" in (tmp_path / "serve.log").read_text(encoding="utf-8")


def _get(url: str, context: ssl.SSLContext | None) -> int:
    async def fetch() -> int:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context or False) as response:
            await response.read()
            return response.status

    return asyncio.run(fetch())


def _until_served(url: str, context: ssl.SSLContext, server: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60  # only a hang reaches it
    while True:
        assert server.poll() is None, "serve ended"
        try:
            return _get(url, context)
        except aiohttp.ClientConnectorError:
            assert time.monotonic() < deadline, "serve never answered"
            time.sleep(0.05)


async def _failed_login_sources(api: Api, headers: dict[str, str]) -> list[str]:
    async with api.client.get("/api/me", headers={"Authorization": "Bearer bc_nope", **headers}) as response:
        assert response.status == 401
    await api.service.failed_logins.flush(everything=True)
    return [json.loads(row.detail)["source"] for row in await api.audit("login_failure")]


FORWARDED = {"X-Forwarded-For": "198.51.100.20, 203.0.113.7", "X-Forwarded-Proto": "https"}


async def test_a_trusted_proxy_names_the_client(providers: Providers) -> None:
    """The test client connects from 127.0.0.1, here the trusted proxy: the client is the nearest forwarded hop."""
    async with serving(providers, trusted_proxies=trusted_networks(["127.0.0.0/8"])) as api:
        assert await _failed_login_sources(api, FORWARDED) == ["203.0.113.7"]


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(providers: Providers) -> None:
    """Anyone can write X-Forwarded-For: from a peer that is not a trusted proxy it changes nothing."""
    async with serving(providers, trusted_proxies=trusted_networks(["10.0.0.0/8"])) as api:
        assert await _failed_login_sources(api, FORWARDED) == ["127.0.0.1"]


async def test_without_a_trusted_proxy_forwarded_headers_change_nothing(providers: Providers) -> None:
    async with serving(providers) as api:
        assert await _failed_login_sources(api, FORWARDED) == ["127.0.0.1"]


async def test_a_forwarded_hop_that_is_not_an_address_is_not_believed(providers: Providers) -> None:
    async with serving(providers, trusted_proxies=trusted_networks(["127.0.0.1"])) as api:
        assert await _failed_login_sources(api, {"X-Forwarded-For": "<script>"}) == ["127.0.0.1"]



async def seen_through(trusted: list[str], headers: dict[str, str]) -> str:
    """What a handler behind the forwarded middleware sees as the client's address and scheme."""
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"{request.remote} {request.scheme}")

    app = web.Application(middlewares=[forwarded_middleware(trusted_networks(trusted))])
    app.router.add_get("/", echo)
    async with TestClient(TestServer(app)) as client, client.get("/", headers=headers) as response:
        return await response.text()


async def test_the_forwarded_rule() -> None:
    assert await seen_through(["127.0.0.1"], FORWARDED) == "203.0.113.7 https"
    assert await seen_through(["10.0.0.0/8"], FORWARDED) == "127.0.0.1 http"  # an untrusted peer
    chain = {"X-Forwarded-For": "203.0.113.7, 10.1.1.1", "X-Forwarded-Proto": "https"}  # two proxies, both trusted
    assert await seen_through(["127.0.0.1", "10.0.0.0/8"], chain) == "203.0.113.7 https"
    assert await seen_through(["127.0.0.1"], chain) == "10.1.1.1 https"  # the inner proxy is not trusted
    assert await seen_through(["127.0.0.1"], {"X-Forwarded-Proto": "gopher"}) == "127.0.0.1 http"

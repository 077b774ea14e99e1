"""The cap_push kind against a fake national platform that verifies every signature: acknowledgements, the
taxonomy of its answers, mTLS with a CA made in the test, and a config that refuses to push unsigned CAP."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme

from broadcaster.channels.base import Clients, OutboundMessage
from broadcaster.channels.cap_push import CapPushChannel, classify_cap_push, reply_status
from broadcaster.errors import ConfigError, DeliveryError, Reason
from tests.channels.kinds import CAP_TOKEN
from tests.fakes.cap_platform import FakeCapPlatform, cap_error, nack, platform_signer, signed_cap
from tests.support import make_config

TOP = {"cap_signing_key": "cap-key.pem", "cap_signing_cert": "cap-cert.pem"}
TOKEN_ENV = "BCAST_TEST_CAP_TOKEN"


def message(body: bytes | None = None, delivery_id: int = 7) -> OutboundMessage:
    return OutboundMessage(delivery_id=delivery_id, alert_id="A-1", channel_id="cap", language="ar+en", text="t",
                           payload=body if body is not None else signed_cap(platform_signer()))


def channel(tmp_path: Path, clients: Clients, base_url: str, **table: Any) -> CapPushChannel:
    keys = {k: v for k, v in {"auth": "bearer", "token_env": TOKEN_ENV, **table}.items() if v is not None}
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = make_config(tmp_path, [{"id": "cap", "kind": "cap_push", "url": "https://cap.platform.example/v1/cap",
                                     "api_base": base_url, "timeout_s": 2.0, **keys}], **TOP)
    return CapPushChannel(config.channels[0], clients)


@asynccontextmanager
async def pushing(fake: FakeCapPlatform, tmp_path: Path, **table: Any) -> AsyncIterator[CapPushChannel]:
    """The fake started, and a channel pointed at it, open."""
    async with fake, Clients(recording=False) as clients, channel(tmp_path, clients, fake.base_url, **table) as cap:
        yield cap


def bearer_platform(**options: Any) -> FakeCapPlatform:
    return FakeCapPlatform(platform_signer().cert_pem, token=CAP_TOKEN, **options)


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, CAP_TOKEN)


async def test_a_push_sends_the_signed_document_and_reads_the_platforms_ack(tmp_path: Path) -> None:
    fake = bearer_platform()
    async with pushing(fake, tmp_path, status_field="status", ack="accepted") as cap:
        receipt = await cap.send(message())
    assert receipt.http_status == 200 and receipt.provider_id == "cap_1"
    (push,) = fake.accepted
    assert push.identifier == "alerts.example.gov/A-1" and push.signer == "CN=Test authority CAP signer"
    assert push.headers["Content-Type"] == "application/cap+xml; charset=utf-8"
    assert push.headers["Idempotency-Key"] == "A-1/7"


async def test_an_xml_reply_and_text_xml_content_type(tmp_path: Path) -> None:
    fake = bearer_platform(reply="xml")
    async with pushing(fake, tmp_path, status_field="status", ack="accepted", content_type="text/xml") as cap:
        receipt = await cap.send(message())
    assert receipt.http_status == 200
    assert fake.accepted[0].headers["Content-Type"] == "text/xml; charset=utf-8"


async def test_a_negative_ack_fails_permanently_in_the_platforms_words(tmp_path: Path) -> None:
    fake = bearer_platform()
    fake.script(nack("area geocode 784-DXB-99 unknown"))
    async with pushing(fake, tmp_path, status_field="status", ack="accepted") as cap:
        with pytest.raises(DeliveryError) as caught:
            await cap.send(message())
    error = caught.value
    assert (error.reason, error.retryable, error.sent_maybe) == (Reason.BAD_REQUEST, False, False)
    assert "status = 'rejected'" in str(error) and "area geocode 784-DXB-99 unknown" in str(error)


@pytest.mark.parametrize(("step", "reason", "retryable", "maybe"), [
    (cap_error(503, retry_after=3), Reason.SERVER, True, False),
    (cap_error(502), Reason.SERVER, True, True),
    (cap_error(429, retry_after=7), Reason.RATE_LIMITED, True, False),
    (cap_error(400, body={"status": "error", "message": "schema: <info> missing"}), Reason.BAD_REQUEST, False, False),
    (cap_error(403), Reason.AUTH, False, False),
])
async def test_the_platforms_answers_join_the_taxonomy(tmp_path: Path, step: Any, reason: Reason, retryable: bool,
                                                       maybe: bool) -> None:
    fake = bearer_platform()
    fake.script(step)
    async with pushing(fake, tmp_path) as cap:
        with pytest.raises(DeliveryError) as caught:
            await cap.send(message())
        receipt = await cap.send(message())  # the retry goes through
    error = caught.value
    assert (error.reason, error.retryable, error.sent_maybe) == (reason, retryable, maybe)
    if step.headers:
        assert error.retry_after == float(step.headers["Retry-After"])
    assert receipt.http_status == 200 and len(fake.accepted) == 1


async def test_a_document_sent_twice_is_held_once_and_a_409_counts_as_delivered(tmp_path: Path) -> None:
    fake = bearer_platform()
    async with pushing(fake, tmp_path) as cap:
        fake.script(cap_error(200, hang=5, accept=True))  # taken in, the reply lost
        with pytest.raises(DeliveryError) as caught:
            await cap.send(message())
        assert caught.value.sent_maybe  # unknown: on_unknown resends the same identifier
        again = await cap.send(message())
        fake.script(cap_error(409, body={"status": "duplicate", "id": "cap_1"}))
        duplicate = await cap.send(message())
    assert again.http_status == 200 and duplicate.http_status == 409 and "delivered before" in (duplicate.note or "")
    assert fake.pushes == ["alerts.example.gov/A-1"] * 3 and len(fake.accepted) == 1


async def test_a_tampered_or_unsigned_body_is_refused_by_the_platform(tmp_path: Path) -> None:
    good = signed_cap(platform_signer())
    tampered = good.replace("تحذير".encode(), "إخلاء".encode())
    fake = bearer_platform()
    async with pushing(fake, tmp_path) as cap:
        with pytest.raises(DeliveryError) as caught:
            await cap.send(message(tampered))
    assert caught.value.reason == Reason.BAD_REQUEST and not caught.value.retryable
    assert "signature tampered" in str(caught.value)
    assert fake.accepted == []


def _client_cert(ca: trustme.CA, folder: Path, name: str) -> tuple[Path, Path]:
    leaf = ca.issue_cert(f"{name}.example")
    cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return cert, key


def _mtls_platform(tmp_path: Path) -> tuple[FakeCapPlatform, trustme.CA, Path]:
    """A platform whose TLS requires a client certificate from ``client_ca``; its own cert from ``server_ca``."""
    server_ca, client_ca = trustme.CA(), trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(context)
    client_ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    ca_file = tmp_path / "platform-ca.pem"
    server_ca.cert_pem.write_to_path(str(ca_file))
    return FakeCapPlatform(platform_signer().cert_pem, tls=context), client_ca, ca_file


async def test_mtls_with_a_client_certificate_from_the_platforms_ca(tmp_path: Path) -> None:
    fake, client_ca, ca_file = _mtls_platform(tmp_path)
    cert, key = _client_cert(client_ca, tmp_path, "authority")
    async with pushing(fake, tmp_path, auth="mtls", token_env=None, client_cert=str(cert), client_key=str(key),
                       ca_file=str(ca_file)) as cap:
        receipt = await cap.send(message())
    assert receipt.http_status == 200 and len(fake.accepted) == 1


async def test_mtls_with_a_wrong_or_no_client_certificate_fails_clearly_and_is_not_retried(tmp_path: Path) -> None:
    fake, _, ca_file = _mtls_platform(tmp_path)
    stranger = trustme.CA()
    cert, key = _client_cert(stranger, tmp_path, "stranger")
    errors: list[DeliveryError] = []
    async with fake, Clients(recording=False) as clients:
        async with channel(tmp_path / "wrong", clients, fake.base_url, auth="mtls", token_env=None,
                           client_cert=str(cert), client_key=str(key), ca_file=str(ca_file)) as cap:
            with pytest.raises(DeliveryError) as caught:
                await cap.send(message())
            errors.append(caught.value)
        async with channel(tmp_path / "none", clients, fake.base_url, ca_file=str(ca_file)) as cap:
            with pytest.raises(DeliveryError) as caught:
                await cap.send(message())
            errors.append(caught.value)
    for error in errors:
        # Refused in the handshake (TLS 1.2): AUTH, not retried. Refused just after it (TLS 1.3): the connection
        # is reset, which no client can tell from another reset; retried (the same identifier), and said.
        assert (error.reason, error.retryable) in ((Reason.AUTH, False), (Reason.NETWORK, True)), error
        assert "client certificate" in str(error) and "client_cert" in str(error)
    assert fake.accepted == []


async def test_a_platform_certificate_not_trusted_is_named(tmp_path: Path) -> None:
    fake, client_ca, _ = _mtls_platform(tmp_path)
    cert, key = _client_cert(client_ca, tmp_path, "authority")
    # No ca_file: the system's CAs do not know the platform's.
    async with pushing(fake, tmp_path, auth="mtls", token_env=None, client_cert=str(cert), client_key=str(key)) as cap:
        with pytest.raises(DeliveryError) as caught:
            await cap.send(message())
    assert caught.value.reason == Reason.AUTH and "not trusted" in str(caught.value)


async def test_a_client_key_others_can_read_is_refused(tmp_path: Path) -> None:
    _, client_ca, ca_file = _mtls_platform(tmp_path)
    cert, key = _client_cert(client_ca, tmp_path, "authority")
    key.chmod(0o644)
    async with Clients(recording=False) as clients:
        cap = channel(tmp_path, clients, "https://127.0.0.1:9", auth="mtls", token_env=None, client_cert=str(cert),
                      client_key=str(key), ca_file=str(ca_file))
        with pytest.raises(ConfigError, match="can be read or changed by other users"):
            await cap.open()


def test_a_cap_push_channel_without_signing_keys_does_not_load(tmp_path: Path) -> None:
    table = {"id": "cap", "kind": "cap_push", "url": "https://cap.platform.example/cap", "auth": "bearer",
             "token_env": TOKEN_ENV}
    with pytest.raises(ConfigError, match="sends signed CAP only"):
        make_config(tmp_path, [table])
    with pytest.raises(ConfigError, match="needs key 'username_env'"):
        make_config(tmp_path, [{**{k: v for k, v in table.items() if k != "token_env"}, "auth": "basic"}], **TOP)
    with pytest.raises(ConfigError, match="'status_field' and 'ack' go together"):
        make_config(tmp_path, [{**table, "status_field": "status"}], **TOP)
    with pytest.raises(ConfigError, match="not used with auth = 'bearer'"):
        make_config(tmp_path, [{**table, "client_cert": "c.pem"}], **TOP)


def test_reply_status_reads_json_paths_and_xml_elements() -> None:
    assert reply_status(b'{"result": {"status": "ok"}}', "result.status") == "ok"
    assert reply_status(b'<r xmlns="urn:x"><status> ok </status></r>', "status") == "ok"
    assert reply_status(b"<!DOCTYPE r [<!ENTITY e 'x'>]><r><status>&e;</status></r>", "status") is None
    assert reply_status(b"accepted", "status") is None
    outcome = classify_cap_push(200, {}, b'{"status": "queued"}', status_field="status", ack="accepted")
    assert isinstance(outcome, DeliveryError) and "expected 'accepted'" in str(outcome)


async def test_basic_auth_is_sent_and_a_wrong_password_is_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BCAST_TEST_CAP_USER", "authority")
    monkeypatch.setenv("BCAST_TEST_CAP_PASSWORD", "pw-SECRET-5e1a")
    table = {"auth": "basic", "token_env": None, "username_env": "BCAST_TEST_CAP_USER",
             "password_env": "BCAST_TEST_CAP_PASSWORD"}
    fake = FakeCapPlatform(platform_signer().cert_pem, basic=("authority", "pw-SECRET-5e1a"))
    async with pushing(fake, tmp_path / "good", **table) as cap:
        receipt = await cap.send(message())
    assert receipt.http_status == 200 and len(fake.accepted) == 1
    monkeypatch.setenv("BCAST_TEST_CAP_PASSWORD", "wrong-password")
    fake = FakeCapPlatform(platform_signer().cert_pem, basic=("authority", "pw-SECRET-5e1a"))
    async with pushing(fake, tmp_path / "bad", **table) as cap:
        with pytest.raises(DeliveryError) as caught:
            await cap.send(message())
    assert (caught.value.reason, caught.value.retryable) == (Reason.AUTH, False)
    assert "wrong-password" not in str(caught.value) and fake.accepted == []

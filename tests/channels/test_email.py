"""EmailChannel: what is particular to SMTP (the shared checks are in test_conformance.py).

aiosmtplib against a real aiosmtpd server on 127.0.0.1 (tests/fakes/smtp.py),
in plain SMTP, STARTTLS and TLS with a trustme certificate authority.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from broadcaster.channels.base import DRY_RUN_PREFIX, AlertDocument, Clients, OutboundMessage
from broadcaster.channels.email import EmailChannel, EmailOptions, email_html, message_id, plain_text
from broadcaster.channels.registry import default_config
from broadcaster.channels.smtp import Security
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.states import OnUnknown
from broadcaster.templates.render import Rendered
from tests.channels.kinds import SMTP_PASSWORD, SMTP_USER
from tests.fakes.smtp import FakeSmtp, step
from tests.support import channel_config

FROM = "الدفاع المدني <alerts@alerts.example.gov>"
FORMS = {
    "ar": {"headline": "تحذير من الفيضانات", "short": "-", "long": "ابتعدوا عن الأودية.\n\nتابعوا القنوات الرسمية."},
    "en": {"headline": "Flood warning", "short": "-", "long": "Keep away from wadis.\n\nFollow official channels."},
}


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCAST_TEST_SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("BCAST_TEST_SMTP_PASSWORD", SMTP_PASSWORD)


def table(fake: FakeSmtp | None = None, **extra: Any) -> dict[str, Any]:
    where = {"host": fake.host, "port": fake.port} if fake else {"host": "127.0.0.1", "port": 2525}
    return {"id": "email-residents", "kind": "email", **where, "security": "plain", "from": FROM,
            "username_env": "BCAST_TEST_SMTP_USERNAME", "password_env": "BCAST_TEST_SMTP_PASSWORD",
            "recipients": "recipients.csv", "timeout_s": 2.0, **extra}


def make(tmp_path: Path, fake: FakeSmtp, clients: Clients, **extra: Any) -> EmailChannel:
    return EmailChannel(channel_config(tmp_path, **table(fake, **extra)), clients)


def mail(to: str = "fatima@example.ae", *, delivery_id: int = 1, alert_id: str = "A-1",
         reply_to: str | None = None, languages: tuple[str, ...] = ("ar", "en")) -> OutboundMessage:
    payload = EmailChannel.payload(_document(), _rendered(languages), default_config("email"))
    return OutboundMessage(delivery_id=delivery_id, alert_id=alert_id, channel_id="email-residents",
                           language="+".join(languages), text=plain_text(FORMS, list(languages)), recipient=to,
                           reply_to=reply_to, payload=payload)


def _document() -> AlertDocument:
    return AlertDocument(alert_id="A-1", identifier="x/A-1", sender="x", sent="-", expires="-", status="Actual",
                         msg_type="Alert", references=None, template="flood_warning", cap={}, event={}, areas=(),
                         forms=FORMS)


def _rendered(languages: tuple[str, ...]) -> Rendered:
    return Rendered("+".join(languages), "-", 1, 2, "bytes")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp(username=SMTP_USER, password=SMTP_PASSWORD) as server:
        yield server


@pytest.fixture
async def channel(tmp_path: Path, fake: FakeSmtp, creds: None, clients: Clients) -> AsyncIterator[EmailChannel]:
    async with make(tmp_path, fake, clients) as ch:
        yield ch


async def test_an_email_is_plain_text_then_html_with_the_arabic_part_first_and_right_to_left(
    channel: EmailChannel, fake: FakeSmtp
) -> None:
    receipt = await channel.send(mail())

    (stored,) = fake.messages
    assert stored.mail_from == "alerts@alerts.example.gov" and stored.rcpt_tos == ["fatima@example.ae"]
    message = stored.message
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = message.iter_parts()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == plain_text(FORMS, ["ar", "en"])
    page = rich.get_content().replace("\r\n", "\n")
    assert page.startswith('<!DOCTYPE html>\n<html lang="ar" dir="rtl">')
    arabic, english = page.index('<div lang="ar" dir="rtl"'), page.index('<div lang="en" dir="ltr"')
    assert arabic < english and "تحذير من الفيضانات" in page[arabic:english]
    assert message["Subject"] == "تحذير من الفيضانات | Flood warning"
    assert message["From"] == FROM and message["To"] == "fatima@example.ae"
    assert message["Message-ID"] == "<broadcaster.A-1.1@alerts.example.gov>" == receipt.provider_id
    assert message["Auto-Submitted"] == "auto-generated" and message["Content-Language"] == "ar, en"
    assert "In-Reply-To" not in message and "References" not in message
    assert receipt.note is not None and receipt.note.startswith("smtp 250 2.0.0 Ok: queued as Q1")
    assert fake.logins == [SMTP_USER]


async def test_every_attempt_at_one_delivery_is_the_same_message_id(channel: EmailChannel, fake: FakeSmtp) -> None:
    first = await channel.send(mail())
    again = await channel.send(mail())  # a resend after an unknown outcome
    other = await channel.send(mail("omar@example.ae", delivery_id=2))
    assert first.provider_id == again.provider_id != other.provider_id
    assert [m.message["Message-ID"] for m in fake.messages] == [first.provider_id] * 2 + [other.provider_id]


async def test_an_update_replies_to_the_email_it_follows(channel: EmailChannel, fake: FakeSmtp) -> None:
    original = await channel.send(mail())
    assert original.provider_id is not None
    await channel.send(mail(alert_id="A-2", reply_to=original.provider_id))

    update = fake.messages[1].message
    assert update["In-Reply-To"] == original.provider_id == update["References"]
    assert update["Message-ID"] == message_id("A-2", 1, "alerts@alerts.example.gov")


async def test_a_rehearsed_update_threads_under_the_rehearsals_message_id(tmp_path: Path) -> None:
    config = channel_config(tmp_path, **table())
    async with Clients(recording=True, latency_s=0) as clients, EmailChannel(config, clients) as ch:
        first = await ch.send(mail())
        assert first.provider_id == DRY_RUN_PREFIX + "<broadcaster.A-1.1@alerts.example.gov>"
        _, data = ch.compose(mail(alert_id="A-2", reply_to=first.provider_id))
    assert b"In-Reply-To: <broadcaster.A-1.1@alerts.example.gov>" in data
    assert clients.recorded == {"email": 1}


async def test_a_refused_recipient_fails_alone_and_the_connection_goes_on(channel: EmailChannel,
                                                                         fake: FakeSmtp) -> None:
    fake.refuse("gone@example.ae", 550, "5.1.1 <gone@example.ae>: Recipient address rejected")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(mail("gone@example.ae"))
    await channel.send(mail("omar@example.ae", delivery_id=2))

    error = caught.value
    assert (error.reason, error.retryable, error.sent_maybe) == (Reason.RECIPIENT_GONE, False, False)
    assert error.provider_code == "550 5.1.1" and error.http_status is None
    assert [m.rcpt_tos for m in fake.messages] == [["omar@example.ae"]]
    assert fake.connections == 1, "the server only refused one recipient: the connection was kept (RSET)"


@pytest.mark.parametrize(("scripted", "reason", "retryable", "sent_maybe"), [
    (step(452, "4.2.2 Mailbox full", at="RCPT"), Reason.SERVER, True, False),
    (step(451, "4.7.1 Greylisted, come back in 5 minutes", at="RCPT"), Reason.SERVER, True, False),
    (step(450, "4.7.1 Sender rate limit exceeded", at="MAIL"), Reason.RATE_LIMITED, True, False),
    (step(421, "4.3.2 Service shutting down", at="DATA"), Reason.RATE_LIMITED, True, False),
    (step(554, "5.6.0 Message content rejected"), Reason.BAD_REQUEST, False, False),
    (step(553, "5.7.1 Sender address rejected: not owned by user", at="MAIL"), Reason.BAD_REQUEST, False, False),
    (step(drop=True, at="MAIL"), Reason.NETWORK, True, False),
    (step(drop=True, accept=True), Reason.NETWORK, True, True),
    (step(hang=30, at="RCPT"), Reason.TIMEOUT, True, False),
    (step(hang=30), Reason.TIMEOUT, True, True),
])
async def test_what_an_smtp_failure_means(tmp_path: Path, fake: FakeSmtp, creds: None, clients: Clients,
                                          scripted: Any, reason: Reason, retryable: bool, sent_maybe: bool) -> None:
    fake.script(scripted)
    async with make(tmp_path, fake, clients, timeout_s=0.3) as ch:
        with pytest.raises(DeliveryError) as caught:
            await ch.send(mail())
        error = caught.value
        assert (error.reason, error.retryable, error.sent_maybe) == (reason, retryable, sent_maybe)
        # Whatever happened to that connection, the next message goes out on a good one.
        await ch.send(mail(delivery_id=2))
    assert fake.messages[-1].message["Message-ID"] == "<broadcaster.A-1.2@alerts.example.gov>"


async def test_a_wrong_password_is_a_permanent_auth_failure(tmp_path: Path, fake: FakeSmtp,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCAST_TEST_SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("BCAST_TEST_SMTP_PASSWORD", "not-the-password")
    async with Clients(recording=False) as clients, make(tmp_path, fake, clients) as ch:
        with pytest.raises(DeliveryError) as caught:
            await ch.send(mail())
    error = caught.value
    assert (error.reason, error.retryable, error.provider_code) == (Reason.AUTH, False, "535 5.7.8")
    assert "not-the-password" not in str(caught.value)
    assert fake.requests == []


async def test_an_idle_connection_the_server_closed_is_replaced_without_losing_the_message(
    channel: EmailChannel, fake: FakeSmtp
) -> None:
    await channel.send(mail())
    for protocol in fake._protocols:  # the server ends idle sessions (a timeout, a restart)
        assert protocol.transport is not None
        protocol.transport.close()
    await asyncio.sleep(0.05)
    await channel.send(mail("omar@example.ae", delivery_id=2))
    assert [m.rcpt_tos for m in fake.messages] == [["fatima@example.ae"], ["omar@example.ae"]]
    assert fake.connections == 2


async def test_a_reused_connection_answered_421_at_mail_is_tried_once_more_on_a_fresh_one(
    channel: EmailChannel, fake: FakeSmtp
) -> None:
    """Nothing of the message was taken at MAIL, so a fresh connection may carry it; the engine is not bothered."""
    await channel.send(mail())
    fake.script(step(421, "4.4.2 fake-smtp.test Error: timeout exceeded", at="MAIL"))
    await channel.send(mail("omar@example.ae", delivery_id=2))
    assert [m.rcpt_tos for m in fake.messages] == [["fatima@example.ae"], ["omar@example.ae"]]
    assert (fake.connections, len(fake.requests)) == (2, 3)
    # On a fresh connection the same answer is the server's word: the channel is told to slow down.
    fake.script(step(421, "4.7.0 Too many connections", at="MAIL"), step(421, "4.7.0 Too many connections", at="MAIL"))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(mail("aisha@example.ae", delivery_id=3))
    assert caught.value.reason is Reason.RATE_LIMITED and fake.connections == 3 and not fake.steps


async def test_a_channel_never_holds_more_connections_than_it_may(tmp_path: Path, creds: None,
                                                                   clients: Clients) -> None:
    async with (
        FakeSmtp(username=SMTP_USER, password=SMTP_PASSWORD, latency=0.05) as slow,
        make(tmp_path, slow, clients, connections=2) as ch,
    ):
        await asyncio.gather(*(ch.send(mail(f"r{n}@example.ae", delivery_id=n)) for n in range(8)))
    assert slow.connections == 2 and len(slow.messages) == 8


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certificate(authority: trustme.CA) -> Iterator[Any]:
    yield authority.issue_cert("127.0.0.1", "localhost")


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_and_starttls_verify_the_servers_certificate(tmp_path: Path, creds: None, security: str,
                                                               authority: trustme.CA, certificate: Any) -> None:
    async with FakeSmtp(username=SMTP_USER, password=SMTP_PASSWORD, security=security,
                        certificate=certificate) as server:
        async with Clients(recording=False) as trusting:
            authority.configure_trust(trusting.ssl_context())
            async with make(tmp_path, server, trusting, security=security) as ch:
                await ch.send(mail())
        assert len(server.messages) == 1 and server.logins == [SMTP_USER]

        async with Clients(recording=False) as stranger, make(tmp_path, server, stranger, security=security) as ch:
            with pytest.raises(DeliveryError) as caught:
                await ch.send(mail(delivery_id=2))
        assert (caught.value.reason, caught.value.retryable, caught.value.sent_maybe) == (Reason.NETWORK, True, False)
        assert "certificate did not verify" in str(caught.value)
        assert len(server.messages) == 1


async def test_starttls_is_required_never_skipped(tmp_path: Path, fake: FakeSmtp, creds: None,
                                                  clients: Clients) -> None:
    """A server (or someone in between) that offers no STARTTLS gets nothing, not a message in the clear."""
    config = channel_config(tmp_path, **table(fake))
    # The fake offers no STARTTLS; "starttls" cannot be configured for a loopback test server otherwise.
    options = replace(config.options_of(EmailOptions), security=Security.STARTTLS)
    async with EmailChannel(replace(config, options=options), clients) as ch:
        with pytest.raises(DeliveryError) as caught:
            await ch.send(mail())
    assert caught.value.reason is Reason.NETWORK and "never sends in the clear" in str(caught.value)
    assert fake.requests == [] and fake.logins == []


def test_layout_combined_is_one_bilingual_email_separate_one_per_language(tmp_path: Path) -> None:
    combined = EmailChannel.render(FORMS, channel_config(tmp_path, **table()))
    assert [r.language for r in combined] == ["ar+en"]
    assert combined[0].text.index("تحذير") < combined[0].text.index("Flood warning")
    assert combined[0].unit == "bytes (UTF-8)" and combined[0].fits
    separate = EmailChannel.render(FORMS, channel_config(tmp_path, **table(layout="separate")))
    assert [(r.language, r.text.splitlines()[0]) for r in separate] == [("ar", "تحذير من الفيضانات"),
                                                                        ("en", "Flood warning")]


def test_the_exercise_marker_is_shown_once_per_language() -> None:
    marked = {lang: {form: f"{m} {text}" for form, text in FORMS[lang].items()}
              for lang, m in (("ar", "[تمرين]"), ("en", "[EXERCISE]"))}
    text = plain_text(marked, ["ar", "en"])
    assert text.count("[تمرين]") == 1 and text.count("[EXERCISE]") == 1
    page = email_html(marked, ["ar", "en"])
    assert page.count("[تمرين]") == 2 and page.count("[EXERCISE]") == 2  # the title and the headline
    payload = EmailChannel.payload(_document(), _rendered(("ar",)), default_config("email"))
    assert orjson.loads(payload or b"{}")["languages"] == ["ar"]


@pytest.mark.parametrize(("extra", "expected"), [
    ({"host": "smtp.example.gov"}, "\"plain\" would send alerts and the login unencrypted"),
    ({"api_base": "https://smtp.example.gov"}, "key 'api_base': an email channel names its server"),
    ({"password_env": None}, "set both 'username_env' and 'password_env', or neither"),
    ({"from": "Civil Defence"}, "key 'from': 'Civil Defence' is not a usable address"),
    ({"reply_to": "ops@mail.test"}, "key 'reply_to'"),
    ({"host": "smtp..example.gov", "security": "tls"}, "key 'host': 'smtp..example.gov' is not a host name"),
    ({"security": "ssl"}, "key 'security': must be \"starttls\" or \"tls\" or \"plain\""),
    ({"connections": 0}, "key 'connections': must be a whole number from 1 to 50"),
])
def test_config_errors_name_the_key(tmp_path: Path, extra: dict[str, Any], expected: str) -> None:
    keys = {k: v for k, v in table(**extra).items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        channel_config(tmp_path, **keys)
    assert "channel 'email-residents'" in str(caught.value) and expected in str(caught.value)


def test_defaults_port_by_security_and_resend_on_unknown(tmp_path: Path) -> None:
    keys = {k: v for k, v in table(host="smtp.example.gov", security="starttls").items() if k != "port"}
    config = channel_config(tmp_path, **keys)
    options = config.options_of(EmailOptions)
    assert (options.port, options.connections, options.on_unknown) == (587, 4, OnUnknown.RESEND)
    tls = {**keys, "security": "tls", "on_unknown": "hold"}
    assert channel_config(tmp_path, **tls).options_of(EmailOptions).port == 465
    assert EmailChannel(channel_config(tmp_path, **tls), Clients(recording=True)).on_unknown is OnUnknown.HOLD
    assert config.recipients is not None and str(config.list_format) == "email"
    assert channel_config(tmp_path, **table(host="::1")).options_of(EmailOptions).host == "::1"

"""One small fixture factory per channel kind, for the conformance suite and the kinds' own tests.

A :class:`KindCase` says how to stand up the kind's loopback fake, how to point a
channel at it, what one delivery looks like, and how the fake is scripted to
rate-limit, hang or fail. The conformance suite runs every kind of
``broadcaster.channels.registry.KINDS`` through the same checks with these; a kind
without a case here fails the suite.
"""

from __future__ import annotations

import base64
import itertools
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from broadcaster.channels.base import Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.registry import KINDS
from broadcaster.channels.x import XChannel
from broadcaster.config import ChannelConfig
from tests.fakes.cap_platform import FakeCapPlatform, cap_error, platform_signer, signed_cap
from tests.fakes.cbc import FakeCbc, cbc_error
from tests.fakes.graph import FakeGraph, graph_error, graph_hang
from tests.fakes.infobip import FakeInfobip, infobip_error
from tests.fakes.infobip import hang as infobip_hang
from tests.fakes.server import Step
from tests.fakes.smtp import FakeSmtp, SmtpStep
from tests.fakes.smtp import step as smtp_step
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio, hang, twilio_error
from tests.fakes.webhook import FakeWebhook, webhook_error
from tests.fakes.x import FakeX

NOW = 1_700_000_000  # X's clock in tests, so x-rate-limit-reset converts predictably

TELEGRAM_TOKEN = "123456:SECRET-TOKEN-VALUE"
X_KEYS = {
    "BCAST_TEST_X_API_KEY": "xkey-SECRET-API-KEY-VALUE",
    "BCAST_TEST_X_API_SECRET": "xsec-SECRET-API-SECRET-VALUE",
    "BCAST_TEST_X_ACCESS_TOKEN": "1234567-SECRET:ACCESS-TOKEN-VALUE",
    "BCAST_TEST_X_ACCESS_SECRET": "xacs-SECRET-ACCESS-SECRET-VALUE",
}
TWILIO_SID = "AC" + "5ec7e75ec7e7" * 2 + "5ec7e75e"
TWILIO_TOKEN = "tok-SMS-SECRET-7f3a9c-do-not-leak"
INFOBIP_KEY = "ibkey-SMS-SECRET-2b8d41-do-not-leak"
HOOK_SECRET = "whsec-PARTNER-SECRET-91c4e2-do-not-leak"
SMTP_USER = "broadcaster-SMTP-USER-4c1d"
SMTP_PASSWORD = "smtp-PASSWORD-SECRET-88e1-do-not-leak"
EMAIL_TO = "fatima.almansoori@example.ae"
CAP_TOKEN = "cap-BEARER-TOKEN-SECRET-2b7e-do-not-leak"
GRAPH_TOKEN = "EAAB-PAGE-TOKEN-SECRET-5d1f0c-do-not-leak"
PAGE_ID = "104000000000001"
IG_USER_ID = "17841400000000001"
PUBLIC_URL = "https://alerts.example.gov"
PHONE = "+971501234567"
WHATSAPP_SID = "HX" + "a1b2c3d4" * 4
# The approved template behind WHATSAPP_SID, and one message of it: the body Twilio fills in is the message text.
WHATSAPP_BODY = "إغلاق {{1}} بسبب {{2}}. الطريق البديل: {{3}}."
WHATSAPP_VALUES = {"1": "\u2068E11\u2069", "2": "حادث مروري", "3": "شارع الخيل"}
WHATSAPP_TEXT = "إغلاق \u2068E11\u2069 بسبب حادث مروري. الطريق البديل: شارع الخيل."
CBC_TOKEN = "cbc-BEARER-SECRET-3e7a-do-not-leak"
CBS_TEXT = "ابتعدوا عن الأودية ولا تعبروا الطرق المغمورة بالمياه. تحذير من خطر السيول في حتا."
ARABIC = "تحذير: فيضانات على «شارع الشيخ زايد». ابتعدوا عن الأودية. Flood warning: keep away from wadis."


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _url_forms(value: str) -> list[str]:
    return [value, quote(value, safe=""), quote(quote(value, safe=""), safe="")]


def _api_base(url: str) -> dict[str, Any]:
    return {"api_base": url}


def _host_and_port(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {"host": parts.hostname, "port": parts.port}


def _http_2xx(receipt: Receipt) -> bool:
    return receipt.http_status is not None and 200 <= receipt.http_status < 300


def _smtp_250(receipt: Receipt) -> bool:
    return receipt.http_status is None and (receipt.note or "").startswith("smtp 250 ")


@dataclass
class KindCase:
    """How the shared checks exercise one kind."""

    kind: str
    env: dict[str, str]  # environment variable -> secret value
    table: dict[str, Any]  # the kind's own keys (id, timeout_s and the fake's address are added)
    fake: Callable[[], Any]  # an unstarted fake provider that accepts ``env``'s credentials (base_url, requests)
    message: Callable[[], OutboundMessage]
    accepted: Callable[[Any], int]  # how many messages the fake took in
    rate_limited: Step | SmtpStep  # a 429 (or the protocol's own "slow down") with the provider's retry hint ...
    retry_after: float | None  # ... and the retry_after the channel must report for it
    hang: Callable[[float], Step | SmtpStep]  # answer after that long, the message already taken in
    failures: list[Step | SmtpStep]  # answers that make a send fail (the secret leak check)
    log_proof: str  # logged at DEBUG on the way (masked where it names a secret): proof logs were captured
    leaks: list[str] = field(default_factory=list)  # further forms of the secrets (encodings)
    build: Callable[[ChannelConfig, Clients], Channel] | None = None
    target: Callable[[str], dict[str, Any]] = _api_base  # the keys that point a channel at a fake's base_url
    succeeded: Callable[[Receipt], bool] = _http_2xx  # what an accepted send's receipt says
    rate_limited_status: int | None = 429  # the HTTP status of the rate-limited answer (None: not HTTP)
    requests_per_send: int = 1  # Instagram publishes in two steps: a media container, then media_publish
    top: dict[str, Any] = field(default_factory=dict)  # [broadcaster] keys the kind needs (public_url)

    def channel(self, config: ChannelConfig, clients: Clients) -> Channel:
        return self.build(config, clients) if self.build else KINDS[self.kind].serving(config)(config, clients)

    def config_table(self, api_base: str, **extra: Any) -> dict[str, Any]:
        return {"id": f"{self.kind}-test", "kind": self.kind, **self.target(api_base), "timeout_s": 2.0,
                **self.table, **extra}

    @property
    def secrets(self) -> list[str]:
        """Every text that must never be exposed."""
        return [*self.env.values(), *self.leaks]


def _message(**fields: Any) -> Callable[[], OutboundMessage]:
    def make() -> OutboundMessage:
        base: dict[str, Any] = {"delivery_id": 7, "alert_id": "A-1", "channel_id": "test", "language": "ar",
                                "text": ARABIC}
        return OutboundMessage(**{**base, **fields})

    return make


_CBS_IDS = itertools.count(1000)  # osmo-cbc holds one message per identifier: each case message has its own


def _cbs_message() -> OutboundMessage:
    """One create, as ``CellBroadcastChannel.payload`` builds it (a fresh message identifier each time)."""
    body = {"cbe_name": "broadcaster-test", "category": "high_priority", "repetition_period": 30, "num_of_bcast": 0,
            "scope": {"scope_plmn": {}},
            "smscb_message": {"serial_nr": {"serial_nr_decoded": {"geo_scope": "plmn_wide", "msg_code": 7,
                                                                  "update_nr": 0}},
                              "message_id": next(_CBS_IDS),
                              "payload": {"payload_decoded": {"character_set": "ucs2", "language": "ar",
                                                              "data_utf8": CBS_TEXT}}}}
    return _message(text=CBS_TEXT, payload=orjson.dumps({"replace": False, "body": body}))()


CASES: dict[str, KindCase] = {
    "telegram": KindCase(
        kind="telegram",
        env={"BCAST_TEST_TELEGRAM_TOKEN": TELEGRAM_TOKEN},
        table={"chat_id": "@authority_alerts", "token_env": "BCAST_TEST_TELEGRAM_TOKEN"},
        fake=lambda: FakeTelegram(token=TELEGRAM_TOKEN),
        message=_message(language="ar+en", text="<b>تحذير</b>\n\nابتعدوا عن الأودية. Keep away from wadis."),
        accepted=lambda fake: len(fake.sent),
        rate_limited=FakeTelegram.retry_after(7),
        retry_after=7.0,
        hang=lambda seconds: FakeTelegram.hang(seconds, accept=True),
        failures=[FakeTelegram.bad_gateway(), FakeTelegram.unauthorized(), FakeTelegram.hang(30)],
        log_proof="/bot********/sendMessage",
        # The bot id before the colon is public; the part after it is the secret.
        leaks=[TELEGRAM_TOKEN.split(":", 1)[1], *_url_forms(TELEGRAM_TOKEN)],
    ),
    "x": KindCase(
        kind="x",
        env=X_KEYS,
        table={"api_key_env": "BCAST_TEST_X_API_KEY", "api_secret_env": "BCAST_TEST_X_API_SECRET",
               "access_token_env": "BCAST_TEST_X_ACCESS_TOKEN", "access_secret_env": "BCAST_TEST_X_ACCESS_SECRET"},
        fake=FakeX,
        message=_message(),
        accepted=lambda fake: len(fake.tweets),
        rate_limited=FakeX.rate_limited(reset_at=NOW + 60),
        retry_after=60.0,
        hang=lambda seconds: FakeX.hang(seconds, accept=True),
        failures=[FakeX.unauthorized(), FakeX.gateway_error(502), FakeX.hang(30)],
        log_proof='oauth_consumer_key="********"',
        leaks=[form for value in X_KEYS.values() for form in _url_forms(value)],
        build=lambda config, clients: XChannel(config, clients, now=lambda: NOW),
    ),
    "sms": KindCase(
        kind="sms",
        env={"BCAST_TEST_TWILIO_SID": TWILIO_SID, "BCAST_TEST_TWILIO_TOKEN": TWILIO_TOKEN},
        table={"account_sid_env": "BCAST_TEST_TWILIO_SID", "auth_token_env": "BCAST_TEST_TWILIO_TOKEN",
               "from": "+15005550006", "recipients": "recipients.csv"},
        fake=lambda: FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN),
        message=_message(recipient=PHONE),
        accepted=lambda fake: len(fake.messages),
        rate_limited=twilio_error(429, 20429, retry_after=7),
        retry_after=7.0,
        hang=lambda seconds: hang(seconds, accept=True),
        # The first answer echoes the token, as a careless provider might.
        failures=[twilio_error(401, 20003, f"Authenticate {TWILIO_TOKEN}"), twilio_error(500, 20500), hang(30)],
        log_proof="twilio POST /2010-04-01/Accounts/********/Messages.json",
        leaks=[base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()],
    ),
    # The sms kind's second provider: a case of its own, so every shared check runs on it too.
    "sms-infobip": KindCase(
        kind="sms",
        env={"BCAST_TEST_INFOBIP_KEY": INFOBIP_KEY},
        table={"provider": "infobip", "api_key_env": "BCAST_TEST_INFOBIP_KEY", "from": "CivilDefence",
               "recipients": "recipients.csv"},
        target=lambda url: {"base_url": url},
        fake=lambda: FakeInfobip(api_key=INFOBIP_KEY),
        message=_message(recipient=PHONE),
        accepted=lambda fake: len(fake.messages),
        rate_limited=infobip_error(429, "E429", "Too many requests", retry_after=7),
        retry_after=7.0,
        hang=lambda seconds: infobip_hang(seconds, accept=True),
        # The first answer echoes the key, as a careless provider might.
        failures=[infobip_error(401, "E401", f"Invalid login details: App {INFOBIP_KEY}"),
                  infobip_error(500, "E500", legacy=True), infobip_hang(30)],
        log_proof="infobip sms-test POST /sms/3/messages -> HTTP 200",
    ),
    "whatsapp": KindCase(
        kind="whatsapp",
        env={"BCAST_TEST_TWILIO_SID": TWILIO_SID, "BCAST_TEST_TWILIO_TOKEN": TWILIO_TOKEN},
        table={"account_sid_env": "BCAST_TEST_TWILIO_SID", "auth_token_env": "BCAST_TEST_TWILIO_TOKEN",
               "from": "whatsapp:+15005550006", "recipients": "recipients.csv",
               "content_sid": {"road_closure": {"ar": WHATSAPP_SID}}},
        fake=lambda: FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN,
                                content={WHATSAPP_SID: WHATSAPP_BODY}),
        message=_message(recipient="whatsapp:" + PHONE, text=WHATSAPP_TEXT, payload=orjson.dumps(
            {"template": "road_closure", "exercise": False, "variables": WHATSAPP_VALUES})),
        accepted=lambda fake: len(fake.messages),
        rate_limited=twilio_error(429, 63018, retry_after=7),
        retry_after=7.0,
        hang=lambda seconds: hang(seconds, accept=True),
        failures=[twilio_error(401, 20003, f"Authenticate {TWILIO_TOKEN}"), twilio_error(400, 63024),
                  twilio_error(500, 20500), hang(30)],
        log_proof="twilio POST /2010-04-01/Accounts/********/Messages.json",
        leaks=[base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()],
    ),
    "webhook": KindCase(
        kind="webhook",
        env={"BCAST_TEST_HOOK_SECRET": HOOK_SECRET},
        table={"url": "https://partner.example/alerts/v1", "secret_env": "BCAST_TEST_HOOK_SECRET"},
        fake=lambda: FakeWebhook(HOOK_SECRET),
        message=_message(language="ar+en", text="", payload=orjson.dumps({"alert_id": "A-1", "info": []})),
        accepted=lambda fake: len(fake.deliveries),
        rate_limited=webhook_error(429, retry_after=7),
        retry_after=7.0,
        hang=lambda seconds: webhook_error(200, hang=seconds, accept=True),
        # An echoing partner, a redirect that names the secret, a hang.
        failures=[webhook_error(400, body={"error": f"bad signature with key {HOOK_SECRET}"}),
                  webhook_error(302, location=f"/moved?key={HOOK_SECRET}"), webhook_error(500, hang=30)],
        log_proof="webhook webhook-test delivery A-1/7 -> HTTP 200",
    ),
    "email": KindCase(
        kind="email",
        env={"BCAST_TEST_SMTP_USERNAME": SMTP_USER, "BCAST_TEST_SMTP_PASSWORD": SMTP_PASSWORD},
        table={"security": "plain", "username_env": "BCAST_TEST_SMTP_USERNAME",
               "password_env": "BCAST_TEST_SMTP_PASSWORD", "from": "Civil Defence <alerts@alerts.example.gov>",
               "recipients": "recipients.csv"},
        target=_host_and_port,
        fake=lambda: FakeSmtp(username=SMTP_USER, password=SMTP_PASSWORD),
        message=_message(recipient=EMAIL_TO, language="ar+en", payload=orjson.dumps(
            {"subject": "تحذير | Flood warning", "html": "<p>تحذير</p><hr><p>Flood warning</p>",
             "languages": ["ar", "en"]})),
        accepted=lambda fake: len(fake.messages),
        rate_limited=smtp_step(421, "4.7.0 Too many messages, slow down", at="MAIL"),
        retry_after=None,  # SMTP gives no hint: the engine's own pause applies
        rate_limited_status=None,
        succeeded=_smtp_250,
        hang=lambda seconds: smtp_step(hang=seconds, accept=True),
        # A server that echoes the password, a recipient refused, a hang during DATA.
        failures=[smtp_step(554, f"5.7.1 Refused; your password {SMTP_PASSWORD} is wrong"),
                  smtp_step(550, "5.1.1 No such user", at="RCPT"), smtp_step(hang=30)],
        log_proof="logged in as ********",
        leaks=[base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode(),
               base64.b64encode(SMTP_PASSWORD.encode()).decode()],
    ),
    "facebook": KindCase(
        kind="facebook",
        env={"BCAST_TEST_FB_TOKEN": GRAPH_TOKEN},
        table={"page_id": PAGE_ID, "token_env": "BCAST_TEST_FB_TOKEN"},
        fake=lambda: FakeGraph(token=GRAPH_TOKEN),
        message=_message(language="ar+en", text=ARABIC),
        accepted=lambda fake: len(fake.posts),
        rate_limited=graph_error(32, "Page request limit reached", status=429, headers={"Retry-After": "7"}),
        retry_after=7.0,
        hang=lambda seconds: graph_hang(seconds, accept=True),
        # A Graph error that echoes the token, a 5xx, a hang.
        failures=[graph_error(190, f"Error validating access token {GRAPH_TOKEN}"),
                  graph_error(2, "Service temporarily unavailable", status=503), graph_hang(30)],
        log_proof=f"facebook facebook-test POST /v21.0/{PAGE_ID}/feed -> HTTP 200",
    ),
    "instagram": KindCase(
        kind="instagram",
        env={"BCAST_TEST_IG_TOKEN": GRAPH_TOKEN},
        table={"ig_user_id": IG_USER_ID, "token_env": "BCAST_TEST_IG_TOKEN"},
        fake=lambda: FakeGraph(token=GRAPH_TOKEN),
        message=_message(payload=orjson.dumps({"image_url": f"{PUBLIC_URL}/cards/A-1/ar.png"})),
        accepted=lambda fake: len(fake.media),
        rate_limited=graph_error(4, "Application request limit reached", status=429, headers={"Retry-After": "7"}),
        retry_after=7.0,
        # The timeout that matters is the publish's: a container alone is never seen.
        hang=lambda seconds: graph_hang(seconds, accept=True, only="media_publish"),
        failures=[graph_error(190, f"Error validating access token {GRAPH_TOKEN}"),
                  graph_error(2, "Service temporarily unavailable", status=503), graph_hang(30)],
        log_proof=f"instagram instagram-test POST /v21.0/{IG_USER_ID}/media_publish -> HTTP 200",
        requests_per_send=2,
        top={"public_url": PUBLIC_URL},
    ),
    "cap_push": KindCase(
        kind="cap_push",
        env={"BCAST_TEST_CAP_TOKEN": CAP_TOKEN},
        table={"url": "https://cap.platform.example/v1/cap", "auth": "bearer", "token_env": "BCAST_TEST_CAP_TOKEN",
               "status_field": "status", "ack": "accepted"},
        fake=lambda: FakeCapPlatform(platform_signer().cert_pem, token=CAP_TOKEN),
        message=lambda: OutboundMessage(delivery_id=7, alert_id="A-1", channel_id="test", language="ar+en",
                                        text=ARABIC, payload=signed_cap(platform_signer())),
        accepted=lambda fake: len(fake.accepted),
        rate_limited=cap_error(429, retry_after=7),
        retry_after=7.0,
        hang=lambda seconds: cap_error(200, hang=seconds, accept=True, body={"status": "accepted"}),
        # A platform that echoes the token in its refusal, in a negative ack, and a hang.
        failures=[cap_error(401, body={"status": "error", "message": f"bad token {CAP_TOKEN}"}),
                  cap_error(200, body={"status": f"rejected {CAP_TOKEN}"}), cap_error(500, hang=30)],
        log_proof="cap_push cap_push-test delivery A-1/7 -> HTTP 200",
        leaks=[f"Bearer {CAP_TOKEN}"],
        top={"cap_signing_key": "cap-key.pem", "cap_signing_cert": "cap-cert.pem"},
    ),
    "cell_broadcast": KindCase(
        kind="cell_broadcast",
        env={"BCAST_TEST_CBC_TOKEN": CBC_TOKEN},
        table={"cbe_name": "broadcaster-test", "scopes": {"DXB": "plmn"}, "token_env": "BCAST_TEST_CBC_TOKEN"},
        fake=lambda: FakeCbc(token=CBC_TOKEN),
        message=_cbs_message,
        accepted=lambda fake: len(fake.history),
        rate_limited=cbc_error(429, "Too Many Requests", retry_after=7),
        retry_after=7.0,
        hang=lambda seconds: cbc_error(201, "Created", hang=seconds, accept=True),
        # A proxy that echoes the token, osmo-cbc's 500 when its FSM refuses, a hang.
        failures=[cbc_error(401, f"bad bearer token {CBC_TOKEN}"), cbc_error(500, "Illegal FSM event"),
                  cbc_error(201, "Created", hang=30)],
        log_proof="cell_broadcast cell_broadcast-test POST /api/ecbe/v1/message -> HTTP 201",
    ),
}

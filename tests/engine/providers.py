"""Every fake provider on one background loop, plus a channels.toml pointing at them.

The default channels are the first four kinds; ``whatsapp_channel`` and
``email_channel`` give tables for ``extra_channels`` (WhatsApp on the same
FakeTwilio, which knows every shipped template's Content SIDs; email on a
FakeSmtp, to ``p.emails``).

Running the fakes on their own thread lets a test drive the real CLI (which
runs its own event loop) or a subprocess, while the fakes keep answering.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from broadcaster.channels.registry import KINDS
from broadcaster.channels.whatsapp import whatsapp_body
from broadcaster.templates.catalogue import Catalogue
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webhook import FakeWebhook
from tests.fakes.x import FakeX
from tests.support import token_file, write_config

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]

SECRETS = {
    "X_API_KEY": "x-api-key-SECRET-1111",
    "X_API_SECRET": "x-api-secret-SECRET-2222",
    "X_ACCESS_TOKEN": "x-access-token-SECRET-3333",
    "X_ACCESS_SECRET": "x-access-secret-SECRET-4444",
    "TELEGRAM_TOKEN": "123456:TELEGRAM-SECRET-5555",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 30 + "",
    "TWILIO_AUTH_TOKEN": "twilio-auth-SECRET-6666",
    "PARTNER_HOOK_SECRET": "partner-hmac-SECRET-7777",
    "SMTP_USERNAME": "smtp-user-SECRET-8888",
    "SMTP_PASSWORD": "smtp-password-SECRET-9999",
}
SECRET_VALUES = [v for k, v in SECRETS.items() if k != "TWILIO_ACCOUNT_SID"]


def secret_forms() -> list[str]:
    """Every form a provider may echo a secret in, lower-cased (look for them in lower-cased text).

    As typed and case-folded (PTB lower-cases an echoed ``/bot<token>/``), percent-encoded, the secret
    half of the bot token alone, and Twilio's basic auth: base64 of ``SID:token``.
    """
    sid, token = SECRETS["TWILIO_ACCOUNT_SID"], SECRETS["TWILIO_AUTH_TOKEN"]
    forms = {base64.b64encode(f"{sid}:{token}".encode()).decode(), sid}
    for value in SECRETS.values():
        forms |= {value, quote(value, safe=""), *value.split(":")[1:]}
    return sorted({form.lower() for form in forms})


AREAS = ["DXB-MARINA", "DXB-BARSHA", "DXB-JUMEIRAH"]  # all on E11, the road_closure example


def uae_phone(n: int) -> str:
    return f"+97150{n:07d}"


def content_sid(template: str, language: str, *, exercise: bool = False) -> str:
    digest = hashlib.sha256(f"{exercise}/{template}/{language}".encode()).hexdigest()
    return "HX" + digest[:32]


def whatsapp_content() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], dict[str, str]]:
    """``(content_sid, exercise_content_sid, the fake's templates)`` for every shipped template and language."""
    catalogue = Catalogue(REPO / "templates", KINDS)
    live: dict[str, dict[str, str]] = {}
    exercise: dict[str, dict[str, str]] = {}
    bodies: dict[str, str] = {}
    for template_id in catalogue.ids():
        template = catalogue.get(template_id)
        for lang in ("ar", "en"):
            for marked, table in ((False, live), (True, exercise)):
                sid = content_sid(template_id, lang, exercise=marked)
                table.setdefault(template_id, {})[lang] = sid
                bodies[sid] = whatsapp_body(template.text[lang]["long"], lang, exercise=marked)
    return live, exercise, bodies


def write_emails(path: Path, count: int) -> list[str]:
    addresses = []
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,language,area\n")
        for i in range(count):
            address = f"resident{i + 1:05d}@example.ae"
            addresses.append(address)
            handle.write(f"{address},{'ar' if i % 3 else 'en'},{AREAS[i % len(AREAS)]}\n")
    return addresses


def write_recipients(path: Path, count: int, *, start: int = 1) -> list[str]:
    phones = []
    with path.open("w", encoding="utf-8") as handle:
        handle.write("phone,language,area\n")
        for i in range(count):
            phone = uae_phone(start + i)
            phones.append(phone)
            handle.write(f"{phone},{'ar' if i % 3 else 'en'},{AREAS[i % len(AREAS)]}\n")
    return phones


class Providers:
    """Start with ``with Providers(tmp_path) as p:``; ``p.config`` is the channels.toml path."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        recipients: int = 6,
        latency: float = 0.0,
        sms_rate: float = 200.0,
        extra_channels: Callable[[Providers], list[dict[str, Any]]] | None = None,
        channel_options: dict[str, Any] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.recipient_count = recipients
        self.latency = latency
        self.sms_rate = sms_rate
        self.extra_channels = extra_channels
        self.channel_options = channel_options or {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-providers", daemon=True)
        self.telegram = FakeTelegram(latency=latency)
        self.x = FakeX(latency=latency)
        self.content_sid, self.exercise_content_sid, bodies = whatsapp_content()
        self.twilio = FakeTwilio(account_sid=SECRETS["TWILIO_ACCOUNT_SID"], latency=latency, content=bodies)
        self.webhook = FakeWebhook(SECRETS["PARTNER_HOOK_SECRET"], latency=latency)
        self.smtp = FakeSmtp(username=SECRETS["SMTP_USERNAME"], password=SECRETS["SMTP_PASSWORD"], latency=latency)
        self.config = tmp_path / "channels.toml"
        self.db = tmp_path / "var" / "broadcaster.db"
        self.phones: list[str] = []
        self.emails: list[str] = []

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)

    def __enter__(self) -> Providers:
        self.thread.start()
        for fake in (self.telegram, self.x, self.twilio, self.webhook, self.smtp):
            self.call(fake.start())
        self.phones = write_recipients(self.tmp_path / "residents.csv", self.recipient_count)
        self.emails = write_emails(self.tmp_path / "emails.csv", self.recipient_count)
        channels = self.default_channels() + (self.extra_channels(self) if self.extra_channels else [])
        for channel in channels:
            channel.update(self.channel_options)
        write_config(self.tmp_path, channels, templates=str(REPO / "templates"), database="var/broadcaster.db")
        return self

    def __exit__(self, *exc: object) -> None:
        for fake in (self.telegram, self.x, self.twilio, self.webhook, self.smtp):
            self.call(fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def default_channels(self) -> list[dict[str, Any]]:
        return [
            {"id": "x-authority", "kind": "x", "api_base": self.x.base_url, "api_key_env": "X_API_KEY",
             "api_secret_env": "X_API_SECRET", "access_token_env": "X_ACCESS_TOKEN",
             "access_secret_env": "X_ACCESS_SECRET", "rate_per_second": 50},
            {"id": "telegram-authority", "kind": "telegram", "api_base": self.telegram.base_url,
             "chat_id": "@authority_alerts", "token_env": "TELEGRAM_TOKEN", "rate_per_second": 50},
            {"id": "sms-residents", "kind": "sms", "api_base": self.twilio.base_url,
             "account_sid_env": "TWILIO_ACCOUNT_SID", "auth_token_env": "TWILIO_AUTH_TOKEN",
             "from": "+15005550006", "recipients": "residents.csv", "rate_per_second": self.sms_rate},
            {"id": "partner-hook", "kind": "webhook", "url": self.webhook.base_url + "/alerts",
             "secret_env": "PARTNER_HOOK_SECRET", "rate_per_second": 50},
        ]

    def whatsapp_channel(self, **options: Any) -> dict[str, Any]:
        """WhatsApp to the same phones as the SMS list, on the same FakeTwilio."""
        return {"id": "whatsapp-residents", "kind": "whatsapp", "api_base": self.twilio.base_url,
                "account_sid_env": "TWILIO_ACCOUNT_SID", "auth_token_env": "TWILIO_AUTH_TOKEN",
                "from": "whatsapp:+15005550006", "recipients": "residents.csv", "rate_per_second": self.sms_rate,
                "content_sid": self.content_sid, **options}

    def email_channel(self, **options: Any) -> dict[str, Any]:
        """Email to ``p.emails`` through the FakeSmtp (plain SMTP: it is on this machine)."""
        return {"id": "email-residents", "kind": "email", "host": self.smtp.host, "port": self.smtp.port,
                "security": "plain", "username_env": "SMTP_USERNAME", "password_env": "SMTP_PASSWORD",
                "from": "Emergency Alerts <alerts@alerts.example.gov>", "recipients": "emails.csv",
                "rate_per_second": self.sms_rate, **options}

    def cli(self, *args: str, as_user: str | None = None) -> list[str]:
        """The CLI's arguments for this config and database; ``as_user`` (a TEST_USERS name) adds
        ``--token-file`` for that user, created in the database on first use."""
        identity = ["--token-file", str(token_file(self.tmp_path, self.db, as_user))] if as_user else []
        return ["--config", str(self.config), "--db", str(self.db), *identity, *args]

"""Email to a recipients list over SMTP, with aiosmtplib (the connections are in :mod:`broadcaster.channels.smtp`).

Config: ``host``, ``port`` (default 587 for ``starttls``, 465 for ``tls``),
``security = "starttls" | "tls"`` (``"plain"`` only when ``host`` is this machine),
``username_env`` and ``password_env`` (both or neither), ``from`` (an address,
optionally ``"Name <address>"``), ``reply_to``, ``recipients`` (CSV
``email,language,area``), ``layout`` (``combined``, the default: both languages in
every email, Arabic first; ``separate``: each recipient in their own language),
``connections`` (1-50, default 4) and ``on_unknown``. One email per address per alert.

Each email is ``multipart/alternative``: the plain text first, then HTML in which
each language is its own block with ``lang`` and ``dir`` (Arabic ``dir="rtl"``,
first). The subject is the headline(s). ``Message-ID`` is
``<broadcaster.ALERT.DELIVERY@from-domain>``: the same for every attempt at one
delivery, so a resend is the same message to every mail system that folds
duplicates by Message-ID. An update or a cancel carries ``In-Reply-To`` and
``References`` naming the email it follows (what each recipient was sent), so
mail clients thread them. ``Auto-Submitted: auto-generated`` keeps out-of-office
replies from answering an alert.

An SMTP server cannot be asked afterwards what it took: when a timeout or a drop
during ``DATA`` leaves it unknown, ``on_unknown`` decides. The default,
``"resend"``, sends it again (same Message-ID), since a missed warning costs more
than a second copy; ``"hold"`` keeps it for an operator (``broadcaster held``).
Shaping: no provider limit worth the name; subject and text are measured in UTF-8
bytes against 64 KiB, which only catches a runaway template.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from broadcaster.channels.base import AlertDocument, Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.smtp import Security, Server, SmtpFailure, SmtpPool, classify_smtp, close_pool, is_loopback
from broadcaster.channels.smtp import open_pool as _open_pool
from broadcaster.channels.telegram import Layout
from broadcaster.config import ChannelConfig, KindTable, RecipientListOptions
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.recipients import ListFormat, email_problem
from broadcaster.states import OnUnknown
from broadcaster.templates.render import Forms, Rendered, shown_once

__all__ = ["EMAIL_LIMIT_BYTES", "EmailChannel", "EmailOptions", "email_html", "message_id"]

EMAIL_LIMIT_BYTES: Final = 64 * 1024
DEFAULT_PORTS: Final = {Security.STARTTLS: 587, Security.TLS: 465, Security.PLAIN: 25}
SEPARATOR: Final = "\n\n—————\n\n"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST: Final = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_DIRECTION: Final = {"ar": "rtl", "en": "ltr"}


@dataclass(frozen=True, kw_only=True)
class EmailOptions(RecipientListOptions):
    """One SMTP server and sender, and its list of addresses."""

    host: str
    port: int
    security: Security
    from_: str
    username_env: str | None = None
    password_env: str | None = None
    reply_to: str | None = None
    layout: Layout = Layout.COMBINED
    connections: int = 4
    on_unknown: OnUnknown = OnUnknown.RESEND
    list_format: ClassVar[ListFormat] = ListFormat.EMAIL

    @property
    def sender(self) -> str:
        """The bare address of ``from``: the envelope sender and the Message-ID's domain."""
        return parseaddr(self.from_)[1]


def message_id(alert_id: str, delivery_id: int, sender: str) -> str:
    """The Message-ID of one delivery: stable across attempts, unique per delivery."""
    return f"<broadcaster.{alert_id}.{delivery_id}@{sender.rpartition('@')[2]}>"


def plain_text(forms: Forms, languages: Sequence[str]) -> str:
    """Headline, then the long form, per language (Arabic first); the exercise marker once per language."""
    return SEPARATOR.join(f"{headline}\n\n{long}" for headline, long in _parts(forms, languages))


def subject(forms: Forms, languages: Sequence[str]) -> str:
    return " | ".join(forms[lang]["headline"] for lang in languages)


def email_html(forms: Forms, languages: Sequence[str]) -> str:
    """The HTML alternative: one block per language, each with its own ``lang`` and ``dir``, Arabic first."""
    blocks = []
    for lang, (headline, long) in zip(languages, _parts(forms, languages), strict=True):
        paragraphs = "".join(f"<p>{html.escape(p.strip()).replace(chr(10), '<br>')}</p>"
                             for p in long.split("\n\n") if p.strip())
        align = "right" if _DIRECTION[lang] == "rtl" else "left"
        blocks.append(f'<div lang="{lang}" dir="{_DIRECTION[lang]}" style="text-align:{align}">'
                      f"<h1 style=\"font-size:1.3em\">{html.escape(headline)}</h1>{paragraphs}</div>")
    first = languages[0]
    return (f'<!DOCTYPE html>\n<html lang="{first}" dir="{_DIRECTION[first]}"><head><meta charset="utf-8">'
            f"<title>{html.escape(subject(forms, languages))}</title></head><body>"
            + "<hr>".join(blocks) + "</body></html>\n")


def _parts(forms: Forms, languages: Sequence[str]) -> list[tuple[str, str]]:
    parts = []
    for lang in languages:
        headline, long = forms[lang]["headline"], forms[lang]["long"]
        long = shown_once(headline, long)
        parts.append((headline, long))
    return parts


def _languages(rendered_language: str) -> list[str]:
    return rendered_language.split("+")


class EmailChannel(Channel):
    """One SMTP server and ``from`` address; one recipient address per delivery."""

    kind = "email"
    can_reconcile = False
    default_rate_per_second: ClassVar[float] = 10.0
    sample: ClassVar[Mapping[str, Any]] = {"host": "smtp.example.gov", "from": "alerts@example.gov",
                                           "username_env": "SMTP_USERNAME", "password_env": "SMTP_PASSWORD",
                                           "recipients": "recipients.csv"}

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> EmailOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys={
            "host": True, "port": False, "security": False, "username_env": False, "password_env": False,
            "from": True, "reply_to": False, "recipients": True, "layout": False, "connections": False,
            "on_unknown": False,
        })
        if keys.has("api_base"):
            raise ConfigError("key 'api_base': an email channel names its server with 'host' and 'port'", where=where)
        host = keys.text("host", "a host name or an IP address")
        if not (_HOST.fullmatch(host) or _is_ip(host)):
            raise ConfigError(f"key 'host': {host!r} is not a host name or an IP address", where=where)
        security = keys.choice("security", Security, Security.STARTTLS)
        if security is Security.PLAIN and not is_loopback(host):
            raise ConfigError('key \'security\': "plain" would send alerts and the login unencrypted; it is only '
                              "allowed for a server on this machine (127.0.0.1, ::1, localhost)", where=where)
        if keys.has("username_env") != keys.has("password_env"):
            raise ConfigError("set both 'username_env' and 'password_env', or neither", where=where)
        return EmailOptions(
            host=host,
            port=keys.whole_number("port", 1, 65535, DEFAULT_PORTS[security]),
            security=security,
            from_=_address(keys, "from"),
            username_env=keys.env("username_env") if keys.has("username_env") else None,
            password_env=keys.env("password_env") if keys.has("password_env") else None,
            reply_to=_address(keys, "reply_to") if keys.has("reply_to") else None,
            recipients=keys.path("recipients", base_dir),
            layout=keys.choice("layout", Layout, Layout.COMBINED),
            connections=keys.whole_number("connections", 1, 50, 4),
            on_unknown=keys.choice("on_unknown", OnUnknown, OnUnknown.RESEND),
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        languages = config.languages
        if config.options_of(EmailOptions).layout is Layout.COMBINED and len(languages) > 1:
            groups = [list(languages)]
        else:
            groups = [[lang] for lang in languages]
        rendered = []
        for group in groups:
            text = plain_text(forms, group)
            size = len(subject(forms, group).encode()) + len(text.encode())
            rendered.append(Rendered("+".join(group), text, size, EMAIL_LIMIT_BYTES, "bytes (UTF-8)"))
        return rendered

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return len(text.encode())

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes | None:
        """The subject and the HTML alternative (the plain text is the message's text)."""
        languages = _languages(rendered.language)
        return orjson.dumps({"subject": subject(document.forms, languages),
                             "html": email_html(document.forms, languages), "languages": languages})

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(EmailOptions)
        self._pool: SmtpPool | None = None

    @property
    def on_unknown(self) -> OnUnknown:
        return self.options.on_unknown

    async def open(self) -> None:
        if self._pool is not None:
            return
        options = self.options
        login = (self.secret("username_env"), self.secret("password_env")) if options.username_env else (None, None)
        server = Server(options.host, options.port, options.security, *login)
        pool = await self.clients.shared(server.key, functools.partial(_open_pool, server, self.clients,
                                                                        options.connections), close_pool)
        pool.widen(options.connections)
        self._pool = pool

    async def close(self) -> None:
        self._pool = None  # the pool is shared: Clients closes it with the run
        await super().close()

    def compose(self, message: OutboundMessage, *, now: datetime | None = None) -> tuple[str, bytes]:
        """``(Message-ID, the message as sent)``: multipart/alternative, plain text then HTML."""
        from email.message import EmailMessage
        from email.policy import SMTP as SMTP_POLICY

        if message.payload is None:
            raise DeliveryError(Reason.BAD_REQUEST, "email delivery has no payload", retryable=False)
        payload = orjson.loads(message.payload)
        mid = message_id(message.alert_id, message.delivery_id, self.options.sender)
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["From"] = self.options.from_
        mail["To"] = message.recipient
        if self.options.reply_to:
            mail["Reply-To"] = self.options.reply_to
        mail["Subject"] = payload["subject"]
        mail["Date"] = format_datetime(now or datetime.now(UTC))
        mail["Message-ID"] = mid
        if message.reply_to:
            parent = self.provider_ref(message.reply_to)
            if parent.startswith("<") and parent.endswith(">"):
                mail["In-Reply-To"] = parent
                mail["References"] = parent
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Broadcaster-Alert"] = message.alert_id
        mail.set_content(message.text, subtype="plain", charset="utf-8", cte="base64")
        mail.add_alternative(payload["html"], subtype="html", charset="utf-8", cte="base64")
        mail["Content-Language"] = ", ".join(payload["languages"])  # after set_content, which drops Content-*
        return mid, mail.as_bytes()

    async def send(self, message: OutboundMessage) -> Receipt:
        if self._pool is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with channel'")
        if not message.recipient:
            raise DeliveryError(Reason.BAD_REQUEST, "email delivery has no recipient", retryable=False)
        mid, data = self.compose(message)
        try:
            reply = await self._pool.deliver(self.options.sender, message.recipient, data,
                                             timeout_s=self.config.timeout_s)
        except SmtpFailure as failure:
            error = classify_smtp(failure, secrets=self.secrets())
        else:
            return self.receipt(mid, None, f"smtp {reply.code} {reply.message}")
        raise error  # outside the except block: the SMTP exception stays out of the chain


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _address(keys: KindTable, key: str) -> str:
    """An address key, optionally ``"Name <address>"``; the address is checked like a list's."""
    value = keys.text(key, "an email address")
    address = parseaddr(value)[1]
    problem = email_problem(address) if address else "there is no address in it"
    if problem is not None:
        raise ConfigError(f"key {key!r}: {value!r} is not a usable address: {problem}", where=keys.where)
    return value.strip()

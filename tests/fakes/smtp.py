"""A real SMTP server (aiosmtpd) on 127.0.0.1, in the test's own event loop, scriptable like the HTTP fakes.

It speaks SMTP as a mail submission server would: EHLO, optional STARTTLS or
TLS from the first byte (``tls`` / ``starttls`` with a trustme certificate),
AUTH PLAIN/LOGIN against ``username``/``password``, then ``MAIL``, ``RCPT`` and
``DATA``. Every transaction (each ``MAIL``) is recorded in :attr:`FakeSmtp.requests`;
a message is stored in :attr:`FakeSmtp.messages` when its ``DATA`` has been read,
before a scripted step answers, so a step with ``accept=True`` is a lost answer.

Scripting: :meth:`FakeSmtp.script` queues :class:`SmtpStep`\\ s, one per
transaction: answer a code at ``MAIL``, ``RCPT`` or ``DATA``, hang before
answering, or drop the connection. :meth:`FakeSmtp.refuse` answers one recipient
with a code every time (a 550 for a mailbox that does not exist, a 452 for a full one).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import ssl
import warnings
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class SmtpStep:
    """One scripted transaction: at ``at`` ("MAIL", "RCPT" or "DATA"), hang, then answer ``code`` or drop."""

    at: str = "DATA"
    code: int | None = None  # None: the normal answer
    text: str = "scripted failure"
    hang: float = 0.0
    accept: bool = False  # store the message first (DATA only): the answer is what gets lost
    drop: bool = False  # close the connection instead of answering


@dataclass
class Transaction:
    mail_from: str
    rcpt_tos: list[str] = field(default_factory=list)


@dataclass
class Stored:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def step(code: int | None = None, text: str = "scripted failure", *, at: str = "DATA", hang: float = 0.0,
         accept: bool = False, drop: bool = False) -> SmtpStep:
    return SmtpStep(at=at, code=code, text=text, hang=hang, accept=accept, drop=drop)


class FakeSmtp:
    """``async with FakeSmtp(...) as fake:``; ``fake.host``, ``fake.port``, ``fake.base_url`` (smtp://host:port)."""

    def __init__(self, *, username: str | None = None, password: str | None = None, security: str = "plain",
                 certificate: Any = None, latency: float = 0.0) -> None:
        self.username, self.password = username, password
        self.security = security  # "plain", "starttls" or "tls"
        self.certificate = certificate  # a trustme LeafCert, for starttls and tls
        self.latency = latency
        self.steps: deque[SmtpStep] = deque()
        self.refusals: dict[str, tuple[int, str]] = {}
        self.requests: list[Transaction] = []
        self.messages: list[Stored] = []
        self.connections = 0
        self.logins: list[str] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._protocols: list[SMTP] = []

    @property
    def base_url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def script(self, *steps: SmtpStep, times: int = 1) -> None:
        for _ in range(times):
            self.steps.extend(steps)

    def refuse(self, address: str, code: int = 550, text: str = "5.1.1 No such user here") -> None:
        self.refusals[address] = (code, text)

    def to(self, address: str) -> list[Stored]:
        return [m for m in self.messages if address in m.rcpt_tos]

    # -- server ---------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.certificate.configure_cert(context)
        return context

    def _protocol(self) -> SMTP:
        self.connections += 1
        with warnings.catch_warnings():
            # AUTH over plain SMTP is what the "plain" (loopback only) tests do on purpose.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            protocol = self._smtp()
        self._protocols.append(protocol)
        return protocol

    def _handler(self) -> _Handler:
        """The aiosmtpd handler of one connection (a subclass may stamp or count what it sees)."""
        return _Handler(self)

    def _smtp(self) -> SMTP:
        return SMTP(
            self._handler(), hostname="fake-smtp.test", auth_required=self.username is not None,
            # TLS from the first byte is TLS too, though aiosmtpd only knows of its own STARTTLS.
            auth_require_tls=self.security == "starttls", authenticator=self._authenticate,
            tls_context=self._context() if self.security == "starttls" else None,
            require_starttls=self.security == "starttls",
        )

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username \
            and auth_data.password.decode() == self.password
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    async def start(self) -> str:
        # The server's own log shows every line it reads, AUTH included: it is the provider's log, not ours.
        logging.getLogger("mail.log").disabled = True
        loop = asyncio.get_running_loop()
        ssl_context = self._context() if self.security == "tls" else None
        self._server = await loop.create_server(self._protocol, self.host, 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            for protocol in self._protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def hold(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


class _Handler:
    """aiosmtpd's hooks: record, apply the transaction's step, answer."""

    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def _scripted(self, server: SMTP, session: Session, at: str) -> str | None:
        current: SmtpStep | None = getattr(session, "broadcaster_step", None)
        if current is None or current.at != at:
            return None
        await self.fake.hold(current.hang)
        if current.drop:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 connection dropped"
        return f"{current.code} {current.text}" if current.code is not None else None

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        self.fake.requests.append(Transaction(address))
        session.broadcaster_step = self.fake.steps.popleft() if self.fake.steps else None  # type: ignore[attr-defined]
        answer = await self._scripted(server, session, "MAIL")
        if answer is not None:
            return answer
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        self.fake.requests[-1].rcpt_tos.append(address)
        answer = await self._scripted(server, session, "RCPT")
        if answer is not None:
            return answer
        if address in self.fake.refusals:
            code, text = self.fake.refusals[address]
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        current: SmtpStep | None = getattr(session, "broadcaster_step", None)
        content = envelope.original_content if envelope.original_content is not None else envelope.content
        stored = Stored(str(envelope.mail_from), list(envelope.rcpt_tos),
                        content if isinstance(content, bytes) else str(content).encode())
        if self.fake.latency:
            await asyncio.sleep(self.fake.latency)
        if current is None or current.at != "DATA":
            self.fake.messages.append(stored)
            return f"250 2.0.0 Ok: queued as Q{len(self.fake.messages)}"
        if current.accept:
            self.fake.messages.append(stored)
        answer = await self._scripted(server, session, "DATA")
        if answer is not None:
            return answer
        if not current.accept:
            self.fake.messages.append(stored)
        return f"250 2.0.0 Ok: queued as Q{len(self.fake.messages)}"

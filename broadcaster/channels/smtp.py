"""SMTP for the ``email`` kind: a shared pool of aiosmtplib connections, its dry-run stand-in, and the error map.

Every email channel of a run that names the same server and login shares one
:class:`SmtpPool` (``Clients.shared``): connections are opened when first needed,
logged in once, and reused one message at a time (``MAIL``, ``RCPT``, ``DATA``),
up to the largest ``connections`` of those channels. Each command carries the
sending channel's own timeout. A connection a server closed while it sat idle is
found at ``MAIL``, before anything of the message was accepted, and that message
is tried once more on a fresh connection; every other failure is the engine's to
retry. A connection that failed mid-message is closed, never reused.

The fence's last look (:mod:`broadcaster.channels.gate`) is taken on a connection
in hand, before ``MAIL`` and again before ``DATA``: the server takes a message
only at the end of ``DATA``, so a gate shut at either look leaves nothing behind.

Outcomes (:func:`classify_smtp`): a message exists at the server only once it
answered the end of ``DATA`` with 2xx. A timeout or a dropped connection *during*
``DATA`` may come after the server took it (``sent_maybe``); anywhere before, it
did not. 5xx at ``RCPT`` fails that one recipient; other 5xx fail the message;
4xx is retried (421 and rate words pause the channel). An SMTP server cannot be
asked later what it accepted: the channel's ``on_unknown`` decides (see ``email``).
In a dry-run the pool hands out a :class:`RecordingSmtp`: the whole message is
built, and each command is answered on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from broadcaster.channels.base import Clients
from broadcaster.channels.gate import last_look
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub

if TYPE_CHECKING:
    from aiosmtplib import SMTPResponse

log = logging.getLogger(__name__)

_ENHANCED: Final = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_SLOW_DOWN: Final = re.compile(r"(?i)rate|limit|too many|throttl|slow down|try again later")
AUTH_CODES: Final = frozenset({530, 534, 535, 538})


class Security(StrEnum):
    """How a channel talks to its SMTP server."""

    STARTTLS = "starttls"  # plain connect, then STARTTLS before anything else (required, never optional)
    TLS = "tls"  # TLS from the first byte (port 465)
    PLAIN = "plain"  # no TLS at all: only to a server on this machine


class Phase(StrEnum):
    """Where in one message's exchange a failure happened."""

    CONNECT = "connect"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Server:
    """What a pool connects to and logs in with."""

    host: str
    port: int
    security: Security
    username: Secret | None
    password: Secret | None

    @property
    def key(self) -> str:
        """The ``Clients.shared`` key: one pool per server and login."""
        login = self.username.env_name if self.username else "-"
        return f"smtp:{self.host}:{self.port}:{self.security}:{login}"


class SmtpFailure(Exception):
    """An SMTP failure with the phase it happened in (classified by :func:`classify_smtp`)."""

    def __init__(self, phase: Phase, cause: BaseException) -> None:
        super().__init__(f"{phase}: {type(cause).__name__}")
        self.phase = phase
        self.cause = cause


class SmtpPool:
    """Connections to one server, one message at a time each; see the module docstring."""

    def __init__(self, server: Server, clients: Clients, limit: int) -> None:
        self.server = server
        self.clients = clients
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[Any] = []

    def widen(self, limit: int) -> None:
        """Let ``limit`` connections be open at once, if that is more than now (one more channel shares the pool)."""
        for _ in range(limit - self.limit):
            self._slots.release()
        self.limit = max(self.limit, limit)

    async def deliver(self, sender: str, recipient: str, data: bytes, *, timeout_s: float) -> SMTPResponse:
        """Send one message to one recipient; raise :class:`SmtpFailure` (or ``Fenced``) when it was not taken."""
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout_s)
        except TimeoutError as exc:
            raise SmtpFailure(Phase.CONNECT, TimeoutError(f"no SMTP connection free within {timeout_s:g} s")) from exc
        try:
            for attempt in (1, 2):
                connection, reused = await self._take(timeout_s)
                try:
                    reply = await self._exchange(connection, sender, recipient, data, timeout_s)
                except SmtpFailure as failure:
                    kept = await self._after_failure(connection, failure, timeout_s)
                    if reused and attempt == 1 and not kept and _stale(failure):
                        log.debug("smtp %s: an idle connection was closed by the server; trying a fresh one",
                                  self.server.host)
                        continue
                    raise
                except BaseException:  # Fenced, or cancelled: the message was not taken
                    await self._after_failure(connection, None, timeout_s)
                    raise
                self._idle.append(connection)
                return reply
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._slots.release()

    async def _take(self, timeout_s: float) -> tuple[Any, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_connected:
                return connection, True
        return await self._connect(timeout_s), False

    async def _connect(self, timeout_s: float) -> Any:
        if self.clients.recording:
            return RecordingSmtp(self.clients)
        import aiosmtplib

        server = self.server
        tls = server.security is not Security.PLAIN
        connection = aiosmtplib.SMTP(
            hostname=server.host, port=server.port, use_tls=server.security is Security.TLS, start_tls=False,
            tls_context=self.clients.ssl_context() if tls else None, local_hostname=socket.gethostname(),
            timeout=timeout_s,
        )
        try:
            await connection.connect(timeout=timeout_s)
            if server.security is Security.STARTTLS:
                # Asked for by name, so a server (or someone in between) that does not offer it gets nothing.
                await connection.ehlo(timeout=timeout_s)
                if not connection.supports_extension("starttls"):
                    raise aiosmtplib.SMTPNotSupported("the server does not offer STARTTLS")
                await connection.starttls(timeout=timeout_s)
            if server.username is not None and server.password is not None:
                await connection.login(server.username.reveal(), server.password.reveal(), timeout=timeout_s)
                log.debug("smtp %s:%s: logged in as %s", server.host, server.port,
                          scrub(server.username.reveal(), [server.username]))
        except Exception as exc:
            connection.close()
            raise SmtpFailure(Phase.CONNECT, exc) from None
        return connection

    async def _exchange(self, connection: Any, sender: str, recipient: str, data: bytes,
                        timeout_s: float) -> SMTPResponse:
        phase = Phase.MAIL
        try:
            last_look()
            await connection.mail(sender, timeout=timeout_s)
            phase = Phase.RCPT
            await connection.rcpt(recipient, timeout=timeout_s)
            last_look()
            phase = Phase.DATA
            reply: SMTPResponse = await connection.data(data, timeout=timeout_s)
        except _failures() as exc:
            raise SmtpFailure(phase, exc) from None
        return reply

    async def _after_failure(self, connection: Any, failure: SmtpFailure | None, timeout_s: float) -> bool:
        """Keep a connection that only had this message refused, or stopped (after RSET); close any other.

        ``failure`` None: the exchange was stopped (the fence's last look, a cancel).
        True when the connection went back to the pool.
        """
        code = getattr(failure.cause, "code", None) if failure is not None else None
        clean = failure is None or (isinstance(code, int) and code != 421)  # a 421 closes the connection
        if clean and connection.is_connected:
            try:
                await connection.rset(timeout=timeout_s)
            except Exception:
                connection.close()
                return False
            self._idle.append(connection)
            return True
        connection.close()
        return False

    async def aclose(self) -> None:
        """QUIT every idle connection (briefly: the run is over), then close it."""
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await connection.quit(timeout=2.0)
            connection.close()


def _stale(failure: SmtpFailure) -> bool:
    """A reused connection that turned out closed at MAIL (nothing of the message was taken)."""
    cause = failure.cause
    return failure.phase is Phase.MAIL and (isinstance(cause, ConnectionError) or getattr(cause, "code", None) == 421)


def _failures() -> tuple[type[BaseException], ...]:
    import aiosmtplib

    return (aiosmtplib.SMTPException, OSError, TimeoutError)


class RecordingSmtp:
    """A dry-run connection: every command answered here, the message counted once at ``DATA``."""

    is_connected = True

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    async def mail(self, sender: str, *, timeout: float) -> SMTPResponse:  # noqa: ASYNC109 - aiosmtplib's
        return _response(250, "2.1.0 Ok")

    async def rcpt(self, recipient: str, *, timeout: float) -> SMTPResponse:  # noqa: ASYNC109 - aiosmtplib's
        return _response(250, "2.1.5 Ok")

    async def data(self, data: bytes, *, timeout: float) -> SMTPResponse:  # noqa: ASYNC109 - aiosmtplib's
        number = await self.clients.answer("email")
        return _response(250, f"2.0.0 Ok: queued as {number}")

    async def rset(self, *, timeout: float) -> SMTPResponse:  # noqa: ASYNC109 - aiosmtplib's
        return _response(250, "2.0.0 Ok")

    async def quit(self, *, timeout: float) -> SMTPResponse:  # noqa: ASYNC109 - aiosmtplib's
        return _response(221, "2.0.0 Bye")

    def close(self) -> None:
        """Nothing to close."""


def _response(code: int, message: str) -> SMTPResponse:
    from aiosmtplib import SMTPResponse

    return SMTPResponse(code, message)


async def open_pool(server: Server, clients: Clients, limit: int) -> SmtpPool:
    """A ``Clients.shared`` factory: the pool connects when a message first needs it."""
    return SmtpPool(server, clients, limit)


async def close_pool(pool: SmtpPool) -> None:
    await pool.aclose()


def reply_code(code: int, message: str) -> str:
    """The provider code of an SMTP reply: ``550 5.1.1`` (with the enhanced status when there is one)."""
    enhanced = _ENHANCED.match(message)
    return f"{code} {enhanced.group(1)}" if enhanced else str(code)


def _cert_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` is, or was raised from, a failed certificate check (aiosmtplib wraps the TLS error)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def classify_smtp(failure: SmtpFailure, *, secrets: tuple[Secret, ...] = ()) -> DeliveryError:
    """Map one SMTP failure into a DeliveryError.

    =======================================  ==============  =========  ==========
    failure                                  reason          retryable  sent_maybe
    =======================================  ==============  =========  ==========
    421, or 4xx saying rate / too many       RATE_LIMITED    yes        no
    other 4xx (greylisting, mailbox busy)    SERVER          yes        no
    530, 534, 535, 538 (authentication)      AUTH            no         no
    5xx at RCPT (no such user, refused)      RECIPIENT_GONE  no         no
    5xx at MAIL or DATA                      BAD_REQUEST     no         no
    timeout connecting (or no free slot)     TIMEOUT         yes        no
    timeout at MAIL or RCPT                  TIMEOUT         yes        no
    timeout during DATA                      TIMEOUT         yes        yes
    refused, DNS, TLS failed, no STARTTLS    NETWORK         yes        no
    dropped before DATA                      NETWORK         yes        no
    dropped during DATA                      NETWORK         yes        yes
    =======================================  ==============  =========  ==========

    The SMTP code (``550 5.1.1``) is the ``provider_code``; there is no HTTP status.
    """
    import aiosmtplib

    cause, phase = failure.cause, failure.phase
    during_data = phase is Phase.DATA
    what = scrub(f"smtp {phase}: {type(cause).__name__}: {cause}", secrets)
    if isinstance(cause, aiosmtplib.SMTPResponseException) and cause.code >= 400:
        code, text = cause.code, scrub(f"smtp {phase}: {cause.code} {cause.message}", secrets)
        provider = reply_code(code, cause.message)

        def error(reason: Reason, retryable: bool) -> DeliveryError:
            return DeliveryError(reason, text, retryable=retryable, provider_code=provider)

        if code == 421 or (code < 500 and _SLOW_DOWN.search(cause.message)):
            return error(Reason.RATE_LIMITED, True)
        if code < 500:
            return error(Reason.SERVER, True)
        if code in AUTH_CODES or isinstance(cause, aiosmtplib.SMTPAuthenticationError):
            return error(Reason.AUTH, False)
        return error(Reason.RECIPIENT_GONE if phase is Phase.RCPT else Reason.BAD_REQUEST, False)
    if isinstance(cause, TimeoutError):
        when = "connecting" if phase is Phase.CONNECT else f"waiting for the answer to {phase}"
        return DeliveryError(Reason.TIMEOUT, f"smtp timed out {when}: {what}", retryable=True, sent_maybe=during_data)
    if _cert_failure(cause):
        return DeliveryError(Reason.NETWORK, f"smtp: the server's TLS certificate did not verify: {what}",
                             retryable=True)
    if isinstance(cause, aiosmtplib.SMTPNotSupported):
        return DeliveryError(Reason.NETWORK, f"smtp: the server did not offer what the channel requires "
                             f"(it never sends in the clear): {what}", retryable=True)
    if isinstance(cause, aiosmtplib.SMTPException | OSError):
        return DeliveryError(Reason.NETWORK, f"smtp connection failed: {what}", retryable=True,
                             sent_maybe=during_data)
    raise TypeError(f"classify_smtp cannot map {type(cause).__name__}")

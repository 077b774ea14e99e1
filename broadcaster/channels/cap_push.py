"""Signed CAP pushed to a national platform or aggregator: one POST of the alert's CAP document per alert.

Config: ``url``; ``auth = "basic" | "bearer" | "mtls"`` with ``username_env`` and
``password_env`` (basic), ``token_env`` (bearer), or ``client_cert`` and
``client_key`` PEM files (mtls; the key not readable by others); ``ca_file``
(optional, any auth) trusts the platform's private CA; ``content_type``
(``"application/cap+xml"``, the default, or ``"text/xml"``); ``status_field`` and
``ack``: a 2xx reply (JSON, or XML) whose ``status_field`` (a dotted path in JSON,
an element's local name in XML) must equal ``ack``, else the push failed
permanently, in the platform's own words.

The body is the alert's CAP document exactly as committed (``alerts.cap``), signed:
a ``cap_push`` channel does not load without ``[broadcaster] cap_signing_key`` and
``cap_signing_cert``, because a national platform accepts only signed CAP. The kind
carries both languages (one ``<info>`` each), so there is one delivery per alert, its
update and its cancel (which carry ``<references>``).

Retries and reconciliation: answers are classified into the one
:class:`~broadcaster.errors.DeliveryError` taxonomy (429 and 5xx retried with
``Retry-After``; 401/403 the credentials; other 4xx permanent). A platform cannot be
asked what it took, so ``can_reconcile`` is false and an unknown outcome is *resent*
(``on_unknown = "resend"``): the same signed bytes, the same CAP ``<identifier>``,
``<sender>`` and ``<sent>``, which CAP platforms (IPAWS-OPEN among them) treat as one
message; a ``409 Conflict`` (the identifier is already there) counts as delivered.
"""

from __future__ import annotations

import base64
import functools
import logging
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from broadcaster.channels.base import AlertDocument, Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.http import (
    answer_error,
    close_session,
    connection_failure,
    reply_id,
    snippet,
    status_error,
)
from broadcaster.channels.recording import RecordedResponse, RecordingSession
from broadcaster.channels.webhook import target_url
from broadcaster.config import ChannelConfig, KindOptions, KindTable
from broadcaster.errors import ConfigError, DeliveryError, Reason, TemplateError
from broadcaster.secret import Secret, scrub
from broadcaster.templates.render import Forms, Rendered

__all__ = ["CapAuth", "CapPushChannel", "CapPushOptions", "classify_cap_push", "reply_status"]

log = logging.getLogger(__name__)

CAP_LIMIT_BYTES: Final = 1024 * 1024  # a CAP document is a few KiB; the texts inside are measured against this
_MAX_RESPONSE_BYTES: Final = 64 * 1024
_DSIG: Final = b"http://www.w3.org/2000/09/xmldsig#"


class CapAuth(StrEnum):
    BASIC = "basic"
    BEARER = "bearer"
    MTLS = "mtls"


class CapContentType(StrEnum):
    CAP = "application/cap+xml"
    XML = "text/xml"


@dataclass(frozen=True, kw_only=True)
class CapPushOptions(KindOptions):
    """The platform's ``url``, how we prove who we are, and how its reply says it took the document."""

    url: str
    auth: CapAuth
    username_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_file: Path | None = None
    content_type: CapContentType = CapContentType.CAP
    status_field: str | None = None
    ack: str | None = None


def reply_status(body: bytes, field: str) -> str | None:
    """The value of ``field`` in a platform's reply: a dotted path in JSON, else the first XML element of that
    local name; None when the reply has no such field."""
    text = body.strip()
    if text[:1] in (b"{", b"["):
        try:
            value: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return None if isinstance(value, dict | list) or value is None else str(value)
    if text[:1] == b"<":
        import defusedxml.ElementTree as SafeET

        try:
            root = SafeET.fromstring(text, forbid_dtd=True)
        except (SafeET.ParseError, ValueError):
            return None
        for element in root.iter():
            if isinstance(element.tag, str) and element.tag.rpartition("}")[2] == field:
                return (element.text or "").strip()
    return None


def classify_cap_push(
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    exc: BaseException | None = None,
    secrets: tuple[Secret, ...] = (),
    status_field: str | None = None,
    ack: str | None = None,
    tls: bool = False,
) -> Receipt | DeliveryError:
    """Map one push outcome into our terms.

    ==============================  =================  =========  ==========
    outcome                         reason             retryable  sent_maybe
    ==============================  =================  =========  ==========
    2xx, ack matches (or none set)  (a Receipt; provider id from the reply's ``id``)
    2xx, ack missing or different   BAD_REQUEST        no         no
    409 (identifier already there)  (a Receipt: delivered before)
    3xx (never followed)            BAD_REQUEST        no         no
    429                             RATE_LIMITED       yes        no
    408                             TIMEOUT            yes        no
    500, 502, 504                   SERVER             yes        yes
    other 5xx                       SERVER             yes        no
    401, 403                        AUTH               no         no
    other 4xx                       BAD_REQUEST        no         no
    TLS: platform cert untrusted    AUTH               no         no
    connection failures             see ``channels.http.connection_failure``
    ==============================  =================  =========  ==========
    """
    if exc is not None:
        return _classify_exception(exc, secrets, tls)
    if status is None:
        raise ValueError("classify_cap_push needs a status or an exception")
    headers = headers or {}
    detail = scrub(snippet(body), secrets)
    if 200 <= status < 300:
        if status_field is not None and ack is not None:
            said = reply_status(body, status_field)
            if said != ack:
                shown = "no " + repr(status_field) if said is None else f"{status_field} = {scrub(said, secrets)!r}"
                return answer_error(_LABEL, status, headers, detail, Reason.BAD_REQUEST,
                                    f"the platform did not acknowledge the document ({shown}, expected {ack!r})",
                                    retryable=False)
        return Receipt(provider_id=reply_id(body), http_status=status)
    if status == 409:
        return Receipt(provider_id=reply_id(body), http_status=status,
                       note="the platform already holds this CAP identifier (delivered before)")
    if 300 <= status < 400:
        location = scrub(str(headers.get("Location", "?")), secrets)
        return answer_error(_LABEL, status, headers, detail, Reason.BAD_REQUEST,
                            f"redirects to {location}; not followed, review the channel url", retryable=False)
    return status_error(_LABEL, status, headers, detail, _PLATFORM_SAYS)


_LABEL: Final = "CAP platform"
_PLATFORM_SAYS: Final = {
    Reason.RATE_LIMITED: "rate limited by the platform",
    Reason.TIMEOUT: "the platform timed out reading the request",
    Reason.SERVER: "platform server error",
    Reason.AUTH: "the platform refused our credentials or client certificate",
    Reason.BAD_REQUEST: "the platform rejected the document",
}


def _classify_exception(exc: BaseException, secrets: tuple[Secret, ...], tls: bool) -> DeliveryError:
    import aiohttp

    what = scrub(f"{type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, aiohttp.InvalidURL):
        return DeliveryError(Reason.BAD_REQUEST, f"CAP platform url is invalid: {what}", retryable=False)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return DeliveryError(Reason.AUTH, "the CAP platform's TLS certificate is not trusted (set ca_file to its "
                                          f"CA, or check the url): {what}", retryable=False)
    if _tls_refusal(exc):
        return DeliveryError(Reason.AUTH, "the CAP platform refused the TLS handshake: our client certificate "
                                          f"(client_cert, client_key) was missing or not accepted: {what}",
                             retryable=False)
    error = connection_failure(exc, "CAP platform", secrets)
    if error is None:
        raise TypeError(f"classify_cap_push cannot map {type(exc).__name__}") from exc
    reset = isinstance(exc, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError)
    if tls and reset and error.reason == Reason.NETWORK:
        # Under TLS 1.3 a server refuses a client certificate after the handshake: the client sees the connection
        # reset, like any other reset. It stays retryable (resending is harmless), but says what to look at.
        error = DeliveryError(error.reason, f"{error} (if the platform requires a client certificate, this is how "
                                            "it refuses a missing or wrong one: check client_cert and client_key)",
                              retryable=error.retryable, sent_maybe=error.sent_maybe)
    return error


def _tls_refusal(exc: BaseException) -> bool:
    """A TLS alert from the server about our certificate (TLS 1.2 during the handshake, 1.3 just after)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        text = str(seen).upper()
        tls = isinstance(seen, ssl.SSLError) or "SSL" in text or "TLS" in text
        if tls and ("CERTIFICATE" in text or "HANDSHAKE_FAILURE" in text or "UNKNOWN_CA" in text):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _private_file(path: Path, key: str, where: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        raise ConfigError(f"key {key!r}: {path} cannot be read", where=where) from None
    if mode & (stat.S_IRWXO | stat.S_IWGRP):
        raise ConfigError(f"key {key!r}: the private key {path} can be read or changed by other users: "
                          f"`chmod 600 {path}` "
                          "first", where=where)


class CapPushChannel(Channel):
    """POSTs each alert's signed CAP document to the platform; an unknown outcome is resent (same identifier)."""

    kind = "cap_push"
    can_reconcile = False
    needs_cap_signing: ClassVar[bool] = True
    default_rate_per_second: ClassVar[float] = 5.0
    sample: ClassVar[Mapping[str, Any]] = {"url": "https://cap.platform.example/cap", "auth": "bearer",
                                           "token_env": "CAP_PLATFORM_TOKEN"}

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> CapPushOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys={
            "url": True, "auth": True, "username_env": False, "password_env": False, "token_env": False,
            "client_cert": False, "client_key": False, "ca_file": False, "content_type": False,
            "status_field": False, "ack": False})
        auth = keys.choice("auth", CapAuth, CapAuth.BEARER)
        needed = {CapAuth.BASIC: ("username_env", "password_env"), CapAuth.BEARER: ("token_env",),
                  CapAuth.MTLS: ("client_cert", "client_key")}[auth]
        others = {"username_env", "password_env", "token_env", "client_cert", "client_key"} - set(needed)
        for key in needed:
            if not keys.has(key):
                raise ConfigError(f"auth = {auth.value!r} needs key {key!r}", where=where)
        for key in sorted(others):
            if keys.has(key):
                raise ConfigError(f"key {key!r} is not used with auth = {auth.value!r}", where=where)
        if keys.has("status_field") != keys.has("ack"):
            raise ConfigError("keys 'status_field' and 'ack' go together: the reply's field and the value that "
                              "means the platform took the document", where=where)
        return CapPushOptions(
            url=keys.http_url("url"), auth=auth,
            username_env=keys.env("username_env") if keys.has("username_env") else None,
            password_env=keys.env("password_env") if keys.has("password_env") else None,
            token_env=keys.env("token_env") if keys.has("token_env") else None,
            client_cert=keys.path("client_cert", base_dir) if keys.has("client_cert") else None,
            client_key=keys.path("client_key", base_dir) if keys.has("client_key") else None,
            ca_file=keys.path("ca_file", base_dir) if keys.has("ca_file") else None,
            content_type=keys.choice("content_type", CapContentType, CapContentType.CAP),
            status_field=keys.optional_text("status_field"), ack=keys.optional_text("ack"),
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        # What is sent is the CAP document (both languages, one <info> each); its texts are measured here.
        text = "\n\n".join(forms[lang]["long"] for lang in ("ar", "en"))
        return [Rendered("ar+en", text, len(text.encode("utf-8")), CAP_LIMIT_BYTES, "bytes")]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return len(text.encode("utf-8"))

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes:
        """The alert's CAP document as committed; refused (nothing committed) when it is not signed."""
        if document.cap_xml is None or _DSIG not in document.cap_xml:
            raise TemplateError(f"channel {config.id!r} pushes signed CAP only, and this alert's CAP document is "
                                "not signed", where=config.where)
        return document.cap_xml

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(CapPushOptions)
        self.url = target_url(self.options.url, self.config.api_base)
        self._session: Any = None
        self._timeout: Any = None
        self._headers: dict[str, str] = {}

    async def open(self) -> None:
        if self._session is not None:
            return
        import aiohttp

        o = self.options
        # mTLS and a private CA need a TLS context of their own: one session per channel then.
        own = o.auth == CapAuth.MTLS or o.ca_file is not None
        key = f"cap_push:{self.id}" if own and not self.clients.recording else "cap_push"
        self._session = await self.clients.shared(key, self._make_session, close_session)
        self._timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        self._headers = {"Content-Type": f"{o.content_type.value}; charset=utf-8"}
        if o.auth == CapAuth.BEARER:
            self._headers["Authorization"] = f"Bearer {self.secret('token_env').reveal()}"
        elif o.auth == CapAuth.BASIC:
            pair = f"{self.secret('username_env').reveal()}:{self.secret('password_env').reveal()}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")

    async def _make_session(self) -> Any:
        if self.clients.recording:
            return RecordingSession(self.clients, "cap_push", functools.partial(_recorded_answer, self.options))
        import aiohttp

        from broadcaster.channels.gate import trace_config
        from broadcaster.clock import in_thread

        context = self.clients.ssl_context()
        if self.options.auth == CapAuth.MTLS or self.options.ca_file is not None:
            context = await in_thread(self._tls_context)
        connector = aiohttp.TCPConnector(ssl=context, limit=0)
        return aiohttp.ClientSession(connector=connector, trace_configs=[trace_config()])

    def _tls_context(self) -> ssl.SSLContext:
        """This channel's TLS: the platform's CA (``ca_file``) and our client certificate (mTLS), read once."""
        o = self.options
        try:
            context = ssl.create_default_context(cafile=str(o.ca_file) if o.ca_file else None)
        except (OSError, ssl.SSLError):
            raise ConfigError(f"key 'ca_file': {o.ca_file} is not a readable PEM CA file", where=self.config.where) \
                from None
        if o.client_cert is not None and o.client_key is not None:
            _private_file(o.client_key, "client_key", self.config.where)
            try:
                context.load_cert_chain(str(o.client_cert), str(o.client_key))
            except (OSError, ssl.SSLError):
                raise ConfigError(f"keys 'client_cert', 'client_key': {o.client_cert} and {o.client_key} are not a "
                                  "PEM certificate and its unencrypted key", where=self.config.where) from None
        return context

    async def close(self) -> None:
        self._session = None  # shared: Clients closes it with the run
        self._headers = {}
        await super().close()

    async def send(self, message: OutboundMessage) -> Receipt:
        if self._session is None:
            raise RuntimeError("use the channel inside 'async with' before sending")
        if message.payload is None:
            raise DeliveryError(Reason.BAD_REQUEST, "CAP push delivery has no CAP document", retryable=False)
        headers = {**self._headers, "Idempotency-Key": message.idempotency_key}
        secrets, o = self.secrets(), self.options
        try:
            post = self._session.post(self.url, data=message.payload, headers=headers, allow_redirects=False,
                                      timeout=self._timeout)
            async with post as resp:
                answer = await resp.content.read(_MAX_RESPONSE_BYTES)
                outcome = classify_cap_push(resp.status, resp.headers, answer, secrets=secrets,
                                            status_field=o.status_field, ack=o.ack)
        except _failures() as exc:
            outcome = classify_cap_push(exc=exc, secrets=secrets, tls=self.url.startswith("https:"))
        log.debug("cap_push %s delivery %s -> %s", self.id, message.idempotency_key,
                  f"HTTP {outcome.http_status}" if isinstance(outcome, Receipt) else outcome.reason.value)
        if isinstance(outcome, DeliveryError):
            raise outcome
        return self.receipt(outcome.provider_id, outcome.http_status, outcome.note)


@functools.cache
def _failures() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientError, TimeoutError, OSError)


def _recorded_answer(options: CapPushOptions, number: int, method: str, url: str,
                     request: Mapping[str, Any]) -> RecordedResponse:
    """The platform's answer in a dry-run: ``200 {"id": ..., <status_field>: <ack>}``."""
    body: dict[str, Any] = {"id": f"cap_{number}"}
    if options.status_field is not None and options.ack is not None:
        node = body
        *parents, last = options.status_field.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = options.ack
    return RecordedResponse(200, body)

"""Cell broadcast: one CBS message per language to every phone in an area, through a Cell Broadcast Centre.

It speaks the **ECBE REST interface of Osmocom's osmo-cbc** with aiohttp (there is no SDK for it):
``POST {api_base}/api/ecbe/v1/message`` creates a message, ``DELETE {api_base}/api/ecbe/v1/message/{id}``
withdraws it. The body follows osmo-cbc's ``cbc.schema.json`` / ``smscb.schema.json`` in the shape its
parser (``src/rest_api.c``) reads: ``cbe_name``, ``category``, ``repetition_period``, ``num_of_bcast``,
``scope: {"scope_plmn": {}}`` and ``smscb_message: {serial_nr: {serial_nr_decoded: {geo_scope, msg_code,
update_nr}}, message_id, payload: {payload_decoded: {character_set, language, data_utf8}}}``.

Config: ``api_base`` (required), ``cbe_name``, ``geo_scope``, ``category``, ``repetition_period``,
``num_of_bcast``, ``max_pages`` (1-15), ``scopes`` (a table: each gazetteer area code the channel may
broadcast to -> its CBC scope) and an optional ``token_env`` (a bearer token for a proxy in front of the
CBC; osmo-cbc itself has no authentication). Shaping: the template's own ``cell_broadcast`` form, one
message per language, measured in pages (:func:`broadcaster.text.lengths.cbs_pages`). Identifiers and
serial numbers: :mod:`broadcaster.channels.cbs_levels`.

What osmo-cbc does, read in ``rest_api.c``, ``rest_it_op.c`` and ``smscb_message_fsm.c``, and what this
kind does about it:

* **Scope.** Its parser accepts only ``scope_plmn`` ("CBCMSG only 'scope_plmn' supported"): every cell of
  every peer the CBC serves. So ``plmn`` is the one value ``scopes`` takes today, and listing an area says
  "this CBC's whole network is how that area is reached". An alert area a channel does not list is
  refused before anything is committed. A regional alert needs a CBC (or a peer set) per region.
* **One message per identifier.** It keeps active messages by ``message_id`` alone and answers
  ``409 Could not allocate`` to a create whose identifier it already holds, whatever the serial number;
  it has no replace (``TODO: REPLACE``) and no status query (no GET route; ``TODO: STATUS``).
  So a first send answered 409 fails permanently, naming the identifier (another alert of the same level
  is on air: cancel it first). An update withdraws its identifier first (404 is fine), then creates it
  again with the next ``update_nr``: phones replace the message they show.
* **Unknown outcomes** (a timeout, a dropped connection, a 500/502/504: osmo-cbc answers 500 when its
  inner operation did not finish, maybe after it created the message) are reconciled before any resend.
  With no way to read a message back, reconciling re-posts the same identifier and serial number, which
  phones drop as a duplicate: ``201`` means it had not landed (it has now), ``409`` that it had. An update
  is reconciled by withdrawing and posting it again, the same way. So a phone sees each version once.
* **Withdrawal.** A cancel (and an all-clear, or any follow-up whose template has no ``cell_broadcast``
  form) withdraws: one DELETE per language of the identifier the CBC accepted for the original (its
  provider id, ``{message_id}/{serial}/{alert}``). ``404 Unknown message ID`` means already gone.

Errors: 400 (the CBC's own text, e.g. "'data_utf8' is mandatory") and other 4xx are permanent; 401/403
are auth; 429 waits its Retry-After; 408 and 5xx retry (500, 502 and 504 as unknown outcomes); 501 is
permanent. Connection failures are :func:`~broadcaster.channels.http.connection_failure`'s.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from broadcaster.channels import cbs_levels
from broadcaster.channels.base import AlertDocument, Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.http import (
    answer_error,
    close_session,
    connection_failure,
    open_session,
    snippet,
    status_error,
)
from broadcaster.channels.recording import RecordedResponse, RecordingSession
from broadcaster.config import ChannelConfig, KindOptions, KindTable, is_http_url
from broadcaster.errors import ConfigError, DeliveryError, Reason, TemplateError
from broadcaster.secret import Secret, scrub
from broadcaster.templates.render import Forms, Rendered, inert_isolates_dropped
from broadcaster.text import lengths

__all__ = ["CellBroadcastChannel", "CellBroadcastOptions", "classify_cbc", "message_path"]

log = logging.getLogger(__name__)

FORM: Final = "cell_broadcast"
MESSAGE_PATH: Final = "/api/ecbe/v1/message"
WITHDRAW_TEXT: Final = {"ar": "(سحب رسالة البث الخلوي)", "en": "(withdraws the cell broadcast message)"}
_MAX_RESPONSE_BYTES: Final = 4096  # osmo-cbc answers a short text ("Created", "Unknown message ID")


class Category(StrEnum):
    NORMAL = "normal"
    HIGH_PRIORITY = "high_priority"
    BACKGROUND = "background"


class GeoScope(StrEnum):
    CELL_WIDE_IMMEDIATE = "cell_wide_immediate"
    PLMN_WIDE = "plmn_wide"
    LAC_SAC_TAC_WIDE = "lac_sac_tac_wide"
    CELL_WIDE = "cell_wide"


class Scope(StrEnum):
    """The CBC scopes an area may map to: osmo-cbc's ECBE parses ``scope_plmn`` only."""

    PLMN = "plmn"


@dataclass(frozen=True, kw_only=True)
class CellBroadcastOptions(KindOptions):
    """One CBC: where its ECBE is, how it repeats a message, and the areas it may broadcast to."""

    cbe_name: str
    scopes: Mapping[str, Scope] = field(default_factory=dict)
    geo_scope: GeoScope = GeoScope.PLMN_WIDE
    category: Category = Category.HIGH_PRIORITY
    repetition_period: int = 30
    num_of_bcast: int = 0  # 0: until withdrawn
    max_pages: int = lengths.CBS_MAX_PAGES
    token_env: str | None = None


def message_path(message_id: int | None = None) -> str:
    return MESSAGE_PATH if message_id is None else f"{MESSAGE_PATH}/{message_id}"


def classify_cbc(
    status: int | None = None, headers: Mapping[str, str] | None = None, body: bytes = b"", *,
    exc: BaseException | None = None, secrets: tuple[Secret, ...] = (), what: str = "POST",
) -> DeliveryError | None:
    """The error of one ECBE answer (None for a 2xx), or of the exception a request raised (see the module)."""
    if exc is not None:
        dropped = connection_failure(exc, "cell broadcast centre", secrets)
        if dropped is None:
            raise TypeError(f"classify_cbc cannot map {type(exc).__name__}") from exc
        return dropped
    if status is None:
        raise ValueError("classify_cbc needs a status or an exception")
    if 200 <= status < 300:
        return None
    headers, detail, label = headers or {}, scrub(snippet(body), secrets), f"CBC {what}"
    if status == 501:
        return answer_error(label, status, headers, detail, Reason.BAD_REQUEST,
                            "the CBC does not implement this operation", retryable=False)
    if status == 409:
        return answer_error(label, status, headers, detail, Reason.BAD_REQUEST, "the CBC already holds this message "
                            "identifier (another alert of this level is on air: withdraw it first)", retryable=False)
    return status_error(label, status, headers, detail, _CBC_SAYS)


_CBC_SAYS: Final = {
    Reason.RATE_LIMITED: "rate limited",
    Reason.TIMEOUT: "the CBC timed out reading the request",
    Reason.SERVER: "CBC server error",
    Reason.AUTH: "refused our credentials",
    Reason.BAD_REQUEST: "the CBC refused the message",
}


class CellBroadcastChannel(Channel):
    """One Cell Broadcast Centre (osmo-cbc's ECBE); one delivery per language, no recipient list."""

    kind = "cell_broadcast"
    can_reconcile = True
    default_rate_per_second: ClassVar[float] = 5.0
    sample: ClassVar[Mapping[str, Any]] = {"api_base": "https://cbc.example.gov", "cbe_name": "broadcaster",
                                           "scopes": {"DXB": "plmn"}}
    KEYS: ClassVar[Mapping[str, bool]] = {
        "cbe_name": True, "scopes": True, "geo_scope": False, "category": False, "repetition_period": False,
        "num_of_bcast": False, "max_pages": False, "token_env": False}

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> CellBroadcastOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys=cls.KEYS)
        if not is_http_url(table.get("api_base")):
            raise ConfigError("key 'api_base': a cell_broadcast channel needs the CBC's http(s) URL", where=where)
        raw = table.get("scopes")
        if not isinstance(raw, dict) or not raw:
            raise ConfigError("key 'scopes': must be a table of area code = \"plmn\"", where=where)
        scopes: dict[str, Scope] = {}
        for area, value in raw.items():
            if not area or value not in tuple(Scope):
                raise ConfigError(f"key 'scopes': area {area!r} must map to \"plmn\" (osmo-cbc's ECBE takes "
                                  "scope_plmn only)", where=where)
            scopes[area] = Scope(value)
        return CellBroadcastOptions(
            cbe_name=keys.text("cbe_name"), scopes=scopes,
            geo_scope=keys.choice("geo_scope", GeoScope, GeoScope.PLMN_WIDE),
            category=keys.choice("category", Category, Category.HIGH_PRIORITY),
            repetition_period=keys.whole_number("repetition_period", 1, 4095, 30),
            num_of_bcast=keys.whole_number("num_of_bcast", 0, 65535, 0),
            max_pages=keys.whole_number("max_pages", 1, lengths.CBS_MAX_PAGES, lengths.CBS_MAX_PAGES),
            token_env=keys.env("token_env") if keys.has("token_env") else None,
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        """Each language's ``cell_broadcast`` form in pages; a template without it (a cancel, an all-clear)
        withdraws the thread's messages and sends no text."""
        limit = config.options_of(CellBroadcastOptions).max_pages
        rows = []
        for lang in config.languages:
            if FORM not in forms[lang]:
                rows.append(Rendered(lang, WITHDRAW_TEXT[lang], 0, limit, "pages"))
                continue
            text = inert_isolates_dropped(forms[lang][FORM])
            count = lengths.cbs_pages(text)
            rows.append(Rendered(lang, text, count.pages, limit, "pages", encoding=count.encoding))
        return rows

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.cbs_pages(inert_isolates_dropped(text)).units if text else 0

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes:
        """What one language's delivery does: withdraw, or create (``replace``: an update) this ECBE body."""
        if document.msg_type == "Cancel" or FORM not in document.forms.get(rendered.language, {}):
            return orjson.dumps({"withdraw": True})
        options = config.options_of(CellBroadcastOptions)
        unmapped = [area for area in document.areas if area not in options.scopes]
        if unmapped:
            raise ConfigError(f"area(s) {', '.join(unmapped)} of this alert have no CBC scope in key 'scopes' of "
                              f"cell_broadcast channel {config.id!r}; nothing was sent", where=config.where)
        primary = cbs_levels.level_identifier(document.cap)
        if primary is None:
            level = "/".join(document.cap.get(k, "?") for k in ("severity", "urgency", "certainty"))
            raise TemplateError(
                f"template {document.template!r} is CAP {level}, which no cell broadcast message identifier "
                f"carries (3GPP TS 23.041: Extreme or Severe, Immediate or Expected, Observed or Likely); it "
                f"cannot go out on channel {config.id!r}; nothing was sent", where=config.where)
        if document.status == "Exercise":
            primary = cbs_levels.EXERCISE
        number = document.thread_number
        count = lengths.cbs_pages(rendered.text)
        body = {
            "cbe_name": options.cbe_name,
            "category": str(options.category),
            "repetition_period": options.repetition_period,
            "num_of_bcast": options.num_of_bcast,
            "scope": {"scope_plmn": {}},
            "smscb_message": {
                "serial_nr": {"serial_nr_decoded": {
                    "geo_scope": str(options.geo_scope),
                    "msg_code": cbs_levels.msg_code(document.thread_root or document.alert_id),
                    "update_nr": cbs_levels.update_nr(number)}},
                "message_id": cbs_levels.identifiers(primary, config.languages)[rendered.language],
                "payload": {"payload_decoded": {
                    "character_set": "gsm" if count.encoding == "GSM-7" else "ucs2",
                    "language": rendered.language, "data_utf8": rendered.text}},
            },
        }
        return orjson.dumps({"replace": number > 0, "body": body})

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(CellBroadcastOptions)
        self.base = (config.api_base or "").rstrip("/")
        self._session: Any = None
        self._timeout: Any = None
        self._headers: dict[str, str] = {}

    async def open(self) -> None:
        if self._session is not None:
            return
        import aiohttp

        self._session = await self.clients.shared("cell_broadcast", self._make_session, close_session)
        self._timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        self._headers = {"Content-Type": "application/json"}
        if self.options.token_env is not None:
            self._headers["Authorization"] = f"Bearer {self.secret('token_env').reveal()}"

    async def _make_session(self) -> Any:
        if self.clients.recording:
            return RecordingSession(self.clients, "cell_broadcast", _recorded_answer)
        return await open_session(self.clients)

    async def close(self) -> None:
        self._session = None
        self._headers = {}
        await super().close()

    async def send(self, message: OutboundMessage) -> Receipt:
        envelope = self._envelope(message)
        if envelope.get("withdraw"):
            return await self._withdraw(message)
        if envelope.get("replace"):
            await self._delete(envelope["body"]["smscb_message"]["message_id"])
        status, _ = await self._create(envelope["body"], message, taken=False)
        return self.receipt(_provider_id(envelope["body"], message), status)

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        """Post the same identifier and serial again (phones drop a repeat): see the module."""
        envelope = self._envelope(message)
        if envelope.get("withdraw") or envelope.get("replace"):
            return await self.send(message)
        status, taken = await self._create(envelope["body"], message, taken=True)
        note = ("the CBC already held this message identifier: taken as this message, posted before its answer "
                "was lost" if taken else "had not reached the CBC; posted now")
        return self.receipt(_provider_id(envelope["body"], message), status, note)

    def _envelope(self, message: OutboundMessage) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("use the channel inside 'async with' before sending")
        if message.payload is None:
            raise DeliveryError(Reason.BAD_REQUEST, "cell broadcast delivery has no payload", retryable=False)
        envelope: dict[str, Any] = orjson.loads(message.payload)
        return envelope

    async def _create(self, body: Mapping[str, Any], message: OutboundMessage, *, taken: bool) -> tuple[int, bool]:
        """POST ``body``: ``(status, already there)``; a 409 counts as already there only when ``taken``."""
        status, headers, answer = await self._request("POST", message_path(), orjson.dumps(body))
        if taken and status == 409:
            return status, True
        error = classify_cbc(status, headers, answer, secrets=self.secrets())
        if error is not None:
            raise error
        return status, False

    async def _delete(self, message_id: int) -> int:
        """DELETE ``message_id``; 404 (already gone) is as good as 200."""
        status, headers, answer = await self._request("DELETE", message_path(message_id), None)
        if status == 404:
            return status
        error = classify_cbc(status, headers, answer, secrets=self.secrets(), what="DELETE")
        if error is not None:
            raise error
        return status

    async def _withdraw(self, message: OutboundMessage) -> Receipt:
        if not message.reply_to:
            return self.receipt(None, None, f"nothing to withdraw: the CBC never accepted the {message.language} "
                                            "message of this thread")
        reference = self.provider_ref(message.reply_to)
        message_id = int(reference.split("/", 1)[0])
        status = await self._delete(message_id)
        note = "already withdrawn (the CBC no longer held it)" if status == 404 else None
        return self.receipt(f"{message_id}/withdrawn/{message.alert_id}", status, note)

    async def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, Mapping[str, str], bytes]:
        secrets = self.secrets()
        try:
            request = self._session.request(method, self.base + path, data=body, headers=self._headers,
                                            allow_redirects=False, timeout=self._timeout)
            async with request as resp:
                answer = await resp.content.read(_MAX_RESPONSE_BYTES)
                status, headers = resp.status, resp.headers
        except _failures() as exc:
            error = classify_cbc(exc=exc, secrets=secrets, what=method)
            assert error is not None
            raise error from None
        log.debug("cell_broadcast %s %s %s -> HTTP %s", self.id, method, path, status)
        return status, headers, answer


def _provider_id(body: Mapping[str, Any], message: OutboundMessage) -> str:
    """``{message_id}/{serial}/{alert}``: the identifier a withdrawal deletes, the version, and whose it is."""
    smscb = body["smscb_message"]
    serial = smscb["serial_nr"]["serial_nr_decoded"]
    number = cbs_levels.serial_number(serial["geo_scope"], serial["msg_code"], serial["update_nr"])
    return f"{smscb['message_id']}/{number:04x}/{message.alert_id}"


@functools.cache
def _failures() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientError, TimeoutError, OSError)


def _recorded_answer(number: int, method: str, url: str, request: Mapping[str, Any]) -> RecordedResponse:
    """osmo-cbc's answers in a dry-run: ``201 Created`` to a create, ``200 OK`` to a withdrawal."""
    status, text = (201, b"Created") if method == "POST" else (200, b"OK")
    return RecordedResponse(status, text, reason=text.decode(), headers={"Content-Type": "text/plain"})

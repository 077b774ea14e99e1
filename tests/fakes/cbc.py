"""A fake osmo-cbc ECBE REST interface on 127.0.0.1, answering as ``src/rest_api.c`` and its FSMs do.

* ``POST /api/ecbe/v1/message``: the body is validated against osmo-cbc's published JSON schema (the copies in
  ``tests/fakes/osmo_cbc/``, repaired as its README says) and then checked as ``rest_api.c`` parses it; a
  body either refuses answers ``400`` with the parser's own text. A message whose ``message_id`` is already
  held answers ``409 Could not allocate`` (osmo-cbc keeps one message per identifier, whatever its serial
  number); otherwise it is kept and answered ``201 Created``.
* ``DELETE /api/ecbe/v1/message/{message_id}``: ``200 OK``, or ``404 Unknown message ID``.

Answers are short ``text/plain`` bodies, as ulfius sends them. :attr:`FakeCbc.history` keeps every create
it accepted, in order (what phones would have been sent); :attr:`FakeCbc.messages` what is on air now.
Scripted steps answer instead of the CBC; ``accept=True`` applies the request first (a lost answer).
"""

from __future__ import annotations

import copy
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.fakes.server import FakeServer, Step

SCHEMA_DIR = Path(__file__).parent / "osmo_cbc"
BASE = "http://api.osmocom.org/json-schema/"
PREFIX = "/api/ecbe/v1"
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXT = frozenset("\f^{}\\[~]|€")


def _repaired(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"schema repair no longer applies: {old!r}"
    return text.replace(old, new)


@functools.cache
def ecbe_validator() -> Draft4Validator:
    """A draft-04 validator of ``cbc.schema.json#/definitions/cbc_message``, repaired (see the README)."""
    cbc_text = (SCHEMA_DIR / "cbc.schema.json").read_text()
    cbc_text = _repaired(cbc_text, '"required": [ "scope", "smscb" }', '"required": [ "scope", "smscb_message" ]')
    cbc_text = _repaired(cbc_text, '"smscb.schema.json#definitions/smscb_message"',
                         '"smscb.schema.json#/definitions/smscb_message"')
    cbc = json.loads(cbc_text)
    smscb = json.loads((SCHEMA_DIR / "smscb.schema.json").read_text())
    defs = smscb["definitions"]
    encoded = defs["payload_encoded"]
    encoded["required"] = encoded["properties"].pop("required")
    for flag in ("emergency_user_alert", "popup_on_display"):
        assert defs["payload_etws"]["properties"][flag] == "boolean"
        defs["payload_etws"]["properties"][flag] = {"type": "boolean"}
    defs["serial_nr"] = _one_of("serial_nr_encoded", "serial_nr_decoded")
    defs["payload"] = _one_of("payload_encoded", "payload_decoded", "payload_etws")
    cbc["definitions"]["scope"] = _one_of("scope_plmn")
    for schema in (cbc, smscb):
        Draft4Validator.check_schema(schema)
    registry: Registry[Any] = Registry().with_resources(
        (BASE + name, Resource.from_contents(schema, default_specification=DRAFT4))
        for name, schema in (("cbc.schema.json", cbc), ("smscb.schema.json", smscb)))
    return Draft4Validator({"$ref": BASE + "cbc.schema.json#/definitions/cbc_message"}, registry=registry)


def _one_of(*members: str) -> dict[str, Any]:
    """An object holding exactly one of ``members``, each validated by the schema's definition of that name."""
    return {"type": "object", "oneOf": [
        {"required": [m], "properties": {m: {"$ref": f"#/definitions/{m}"}}} for m in members]}


def parser_problem(body: Any) -> str | None:
    """What ``rest_api.c``'s ``json2cbc_message`` refuses beyond the schema, in its own words."""
    if not isinstance(body, dict):
        return "CBCMSG must be JSON object"
    if not isinstance(body.get("cbe_name"), str):
        return "CBCMSG 'cbe_name' is mandatory"
    if "repetition_period" not in body:
        return "CBCMSG 'repetiton_period' is mandatory"
    smscb = body.get("smscb_message", {})
    decoded = smscb.get("payload", {}).get("payload_decoded")
    if decoded is not None:
        if "character_set" not in decoded:
            return "Currently 'character_set' is mandatory"
        if pages(decoded["data_utf8"], decoded["character_set"]) > 15:
            return "message too long for 15 pages"
    return None


def pages(text: str, charset: str) -> int:
    """Pages of 82 octets (3GPP TS 23.041): GSM-7 septets packed 8 to 7 octets, or UCS-2 big-endian."""
    if charset == "gsm":
        if not set(text) <= _GSM7 | _GSM7_EXT:
            return 99  # osmo-cbc's converter would fail on it
        septets = len(text) + sum(ch in _GSM7_EXT for ch in text)
        return max(1, math.ceil(septets / 93))
    return max(1, math.ceil(len(text.encode("utf-16-be")) / 82))


@dataclass
class CbsMessage:
    """One create the CBC accepted: its body, and the parts phones tell messages apart by."""

    body: dict[str, Any]

    @property
    def message_id(self) -> int:
        return int(self.body["smscb_message"]["message_id"])

    @property
    def serial(self) -> dict[str, Any]:
        return dict(self.body["smscb_message"]["serial_nr"]["serial_nr_decoded"])

    @property
    def text(self) -> str:
        return str(self.body["smscb_message"]["payload"]["payload_decoded"]["data_utf8"])

    @property
    def language(self) -> str:
        return str(self.body["smscb_message"]["payload"]["payload_decoded"].get("language"))


def cbc_error(status: int, text: str = "scripted", *, accept: bool = False, hang: float = 0.0,
              retry_after: int | None = None) -> Step:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Step(status=status, body=text, headers=headers, accept=accept, hang=hang)


class FakeCbc(FakeServer):
    """Scriptable osmo-cbc ECBE. ``token``: answer 401 to a request without ``Authorization: Bearer token``."""

    def __init__(self, *, token: str | None = None, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.token = token
        self.messages: dict[int, CbsMessage] = {}
        self.history: list[CbsMessage] = []
        self.deleted: list[int] = []
        self.app.router.add_post(PREFIX + "/message", self._create)
        self.app.router.add_delete(PREFIX + "/message/{message_id}", self._delete)

    def seen_by_phones(self) -> list[tuple[int, int, int]]:
        """``(message_id, msg_code, update_nr)`` of each accepted create: a phone shows each distinct one once."""
        return [(m.message_id, m.serial["msg_code"], m.serial["update_nr"]) for m in self.history]

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _text(401, "Unauthorized")
        return None

    async def _create(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            body = orjson.loads(rec.body)
        except orjson.JSONDecodeError:
            return _text(400, "REST: No JSON Body")
        problems = sorted(ecbe_validator().iter_errors(body), key=str)
        if problems:
            return _text(400, f"schema: {problems[0].message}")
        problem = parser_problem(body)
        if problem is not None:
            return _text(400, problem)
        step = self.next_step(rec)
        status, answer = self._apply_create(body) if step is None or step.accept else (0, "")
        await self.provider_latency()
        if step is not None:
            return await self._scripted(step)
        return _text(status, answer)

    def _apply_create(self, body: dict[str, Any]) -> tuple[int, str]:
        message = CbsMessage(copy.deepcopy(body))
        if message.message_id in self.messages:
            return 409, "Could not allocate"
        self.messages[message.message_id] = message
        self.history.append(message)
        return 201, "Created"

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        refused = self._refused(request)
        if refused is not None:
            return refused
        raw = request.match_info["message_id"]
        message_id = int(raw) if raw.isdigit() else -1
        if not 0 <= message_id <= 65535:
            return web.Response(status=400)
        step = self.next_step(rec)
        found = True
        if step is None or step.accept:
            found = self.messages.pop(message_id, None) is not None
            if found:
                self.deleted.append(message_id)
        await self.provider_latency()
        if step is not None:
            return await self._scripted(step)
        return _text(200, "OK") if found else _text(404, "Unknown message ID")

    async def _scripted(self, step: Step) -> web.Response:
        await self.hold(step.hang)
        return _text(step.status, str(step.body or ""), step.headers)


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)

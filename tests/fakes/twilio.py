"""A fake Twilio Messages API on 127.0.0.1 that the real twilio SDK can talk to.

Routes (``{sid}`` is the account SID, checked against HTTP basic auth):

* ``POST /2010-04-01/Accounts/{sid}/Messages.json``: form ``To``, ``From`` or
  ``MessagingServiceSid``, ``Body`` or ``ContentSid`` and ``ContentVariables``,
  ``StatusCallback`` -> 201 message JSON.
* ``GET  /2010-04-01/Accounts/{sid}/Messages.json``: ``To``, ``From``,
  ``DateSent``, ``DateSent<``, ``DateSent>`` filters; ``PageSize`` (default 50,
  max 1000) and ``PageToken`` paging, newest first, ``next_page_uri`` as Twilio.
* ``GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json``.

WhatsApp: ``To`` and ``From`` are ``whatsapp:+E164`` (both, or neither: 21910).
A WhatsApp message must be a template: a ``ContentSid`` the fake was given in
``content`` (else 21655), with ``ContentVariables`` for exactly its ``{{n}}``
placeholders (else 63028), none empty or holding a line break or a tab (else
21656); its ``Body`` is then the template filled in, as Twilio reports it. A
free-form WhatsApp ``Body`` is refused with 63016 (outside the 24-hour window).
Twilio reports most WhatsApp errors later, in a status callback; the fake answers
them at once, which is what a scripted step does anyway.

A message is stored in :attr:`FakeTwilio.messages` the moment its request body
is fully read, before latency or a scripted step applies: a client killed
mid-request either got its message accepted or not at all. Scripted steps (see
:func:`twilio_error`, :func:`hang`) answer instead of the normal reply; a step
with ``accept=True`` first stores the message (a lost response).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.server import FakeServer, Recorded, Step

API = "/2010-04-01/Accounts/{account}"
DEFAULT_ACCOUNT_SID = "AC" + "f" * 32
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SLOT = re.compile(r"\{\{(\d+)\}\}")
WHATSAPP = "whatsapp:"
MAX_PAGE_SIZE = 1000


def twilio_error(
    status: int,
    code: int,
    message: str = "scripted failure",
    *,
    retry_after: float | str | None = None,
    accept: bool = False,
    hang: float = 0.0,
) -> Step:
    """A scripted Twilio error answer in the legacy ``{code, message, more_info, status}`` shape."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Step(status=status, body=body, headers=headers, accept=accept, hang=hang)


def echo_auth(status: int = 401, code: int = 20003) -> Step:
    """An error that echoes the request's ``Authorization`` header (``Basic base64(SID:token)``) and path."""

    def body(request: Recorded) -> dict[str, Any]:
        said = f"Authenticate: {request.headers.get('Authorization', '')} is not valid for {request.path}"
        return {"code": code, "message": said, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status}

    return Step(status=status, body=body)


def hang(seconds: float = 30.0, *, accept: bool = False) -> Step:
    """Answer nothing for ``seconds`` (past the client's timeout); ``accept`` stores the message first."""
    return Step(status=201, hang=seconds, accept=accept)


class FakeTwilio(FakeServer):
    """Scriptable Twilio. ``messages`` holds accepted messages as dicts, oldest first.

    Each dict has ``sid``, ``to``, ``from``, ``messaging_service_sid``, ``body``,
    ``content_sid`` and ``content_variables`` (None for a plain body),
    ``status``, ``status_callback``, ``date_created`` and ``date_sent`` (datetimes
    in UTC; ``date_sent`` is None while queued) and ``seq``.

    ``sent_immediately=False`` keeps messages queued (``date_sent`` None), like a
    real account with a long send queue: the ``DateSent`` filters then skip them.
    ``clock`` gives the server's "now" (aware UTC); defaults to the real clock.
    """

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str | None = None,
        latency: float = 0.0,
        sent_immediately: bool = True,
        clock: Callable[[], datetime] | None = None,
        content: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(latency=latency)
        self.content = dict(content or {})  # ContentSid -> the approved template's body, {{1}} ...
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sent_immediately = sent_immediately
        self.clock = clock or (lambda: datetime.now(UTC))
        self.messages: list[dict[str, Any]] = []
        self._by_to: dict[str, list[dict[str, Any]]] = {}
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._seq = itertools.count(1)
        base = API.format(account="{account}")
        self.app.router.add_post(base + "/Messages.json", self._create)
        self.app.router.add_get(base + "/Messages.json", self._list)
        self.app.router.add_get(base + "/Messages/{sid}.json", self._fetch)

    # -- test helpers ---------------------------------------------------------------

    def messages_to(self, to: str) -> list[dict[str, Any]]:
        """Accepted messages to one number, oldest first (indexed: cheap for thousands)."""
        return list(self._by_to.get(to, ()))

    @property
    def posts(self) -> int:
        """How many message-create requests arrived (accepted or not)."""
        return sum(1 for r in self.requests if r.method == "POST")

    def seed(
        self,
        to: str,
        body: str,
        *,
        from_: str | None = "+15005550006",
        messaging_service_sid: str | None = None,
        date_created: datetime | None = None,
    ) -> dict[str, Any]:
        """Store a message as if it had been sent earlier, without HTTP."""
        form = {"To": to, "Body": body}
        if from_:
            form["From"] = from_
        if messaging_service_sid:
            form["MessagingServiceSid"] = messaging_service_sid
        return self._store(form, created=date_created)

    # -- handlers -------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)  # the body is fully read here
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        step = self.next_step(rec)
        accepted: dict[str, Any] | None = None
        if step is None or step.accept:
            invalid = self._validate(rec.form)
            if invalid is not None:
                return invalid
            accepted = self._store(rec.form)
        await self.provider_latency()
        if step is None:
            assert accepted is not None
            return web.json_response(self._resource(accepted), status=201)
        if accepted is not None and 200 <= step.status < 300 and step.body is None:
            await self.hold(step.hang)
            return web.json_response(self._resource(accepted), status=step.status, headers=step.headers)
        return await self.answer(step)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        step = self.next_step()
        if step is not None:
            return await self.answer(step)
        await self.provider_latency()
        query = request.query
        try:
            page_size = min(int(query.get("PageSize", "50")), MAX_PAGE_SIZE)
            page = int(query.get("Page", "0"))
            before_seq = int(query["PageToken"][2:]) if "PageToken" in query else None
            matches = self._matching(query)
        except (ValueError, KeyError) as exc:
            return _error(400, 20001, f"Invalid parameter: {exc}")
        if before_seq is not None:
            matches = [m for m in matches if m["seq"] < before_seq]
        chunk = matches[:page_size]
        keep = {k: v for k, v in query.items() if k in ("To", "From", "DateSent", "DateSent<", "DateSent>")}
        uri = request.path
        next_uri = None
        if len(matches) > page_size:
            params = {**keep, "PageSize": page_size, "Page": page + 1, "PageToken": f"PA{chunk[-1]['seq']}"}
            next_uri = f"{uri}?{urlencode(params)}"
        first = f"{uri}?{urlencode({**keep, 'PageSize': page_size, 'Page': 0})}"
        return web.json_response({
            "messages": [self._resource(m) for m in chunk],
            "end": page * page_size + max(len(chunk) - 1, 0),
            "first_page_uri": first,
            "next_page_uri": next_uri,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": page * page_size,
            "uri": request.path_qs,
        })

    async def _fetch(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        message = self._by_sid.get(request.match_info["sid"])
        if message is None:
            return _error(404, 20404, "The requested resource was not found")
        return web.json_response(self._resource(message))

    # -- internals ------------------------------------------------------------------

    def _check_auth(self, request: web.Request) -> web.Response | None:
        account = request.match_info["account"]
        header = request.headers.get("Authorization", "")
        user, _, password = "", "", ""
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        ok = account == self.account_sid and user == self.account_sid
        if self.auth_token is not None:
            ok = ok and password == self.auth_token
        return None if ok else _error(401, 20003, "Authenticate")

    def _validate(self, form: dict[str, str]) -> web.Response | None:
        to = form.get("To", "")
        whatsapp = to.startswith(WHATSAPP)
        if not _E164.match(to.removeprefix(WHATSAPP)):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if form.get("From") and form["From"].startswith(WHATSAPP) != whatsapp:
            return _error(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
        if "ContentSid" in form:
            return self._template_problem(form)
        if whatsapp:
            return _error(400, 63016, "Failed to send freeform message because you are outside the allowed window.")
        if not form.get("Body"):
            return _error(400, 21602, "Message body is required.")
        return None

    def _template_problem(self, form: dict[str, str]) -> web.Response | None:
        body = self.content.get(form["ContentSid"])
        if body is None:
            return _error(400, 21655, "The ContentSid is Invalid")
        try:
            variables = json.loads(form.get("ContentVariables", "{}"))
        except ValueError:
            return _error(400, 21656, "The ContentVariables Parameter is invalid")
        if not isinstance(variables, dict) or set(variables) != set(_SLOT.findall(body)):
            return _error(400, 63028, "Number of parameters provided does not match the expected number")
        if any(not isinstance(v, str) or not v.strip() or re.search(r"[\n\t]", v) for v in variables.values()):
            return _error(400, 21656, "The ContentVariables Parameter is invalid")
        return None

    def _body(self, form: dict[str, str]) -> str:
        if "ContentSid" not in form:
            return form.get("Body", "")
        variables = json.loads(form.get("ContentVariables", "{}"))
        return _SLOT.sub(lambda m: variables[m.group(1)], self.content[form["ContentSid"]])

    def _store(self, form: dict[str, str], *, created: datetime | None = None) -> dict[str, Any]:
        now = (created or self.clock()).astimezone(UTC).replace(microsecond=0)
        body = self._body(form)
        message: dict[str, Any] = {
            "sid": "SM" + secrets.token_hex(16),
            "seq": next(self._seq),
            "to": form.get("To"),
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "sent" if self.sent_immediately else "queued",
            "status_callback": form.get("StatusCallback"),
            "content_sid": form.get("ContentSid"),
            "content_variables": json.loads(form["ContentVariables"]) if "ContentVariables" in form else None,
            "date_created": now,
            "date_sent": now if self.sent_immediately else None,
            "num_segments": str(_segments(body)),
        }
        self.messages.append(message)
        self._by_to.setdefault(str(message["to"]), []).append(message)
        self._by_sid[message["sid"]] = message
        return message

    def _matching(self, query: Any) -> list[dict[str, Any]]:
        """Messages matching the list filters, newest first."""
        candidates = self._by_to.get(query["To"], []) if "To" in query else self.messages
        result = []
        checks = [(key, _bound(key, query[key])) for key in ("DateSent", "DateSent<", "DateSent>") if key in query]
        for message in reversed(candidates):
            if "From" in query and message["from"] != query["From"]:
                continue
            sent = message["date_sent"]
            if checks and sent is None:
                continue  # a queued message has no date_sent: Twilio's date filters skip it
            if all(check(sent) for _key, check in checks):
                result.append(message)
        return result

    def _resource(self, m: dict[str, Any]) -> dict[str, Any]:
        uri = f"{API.format(account=self.account_sid)}/Messages/{m['sid']}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": m["body"],
            "date_created": format_datetime(m["date_created"]),
            "date_sent": format_datetime(m["date_sent"]) if m["date_sent"] else None,
            "date_updated": format_datetime(m["date_created"]),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": m["from"],
            "messaging_service_sid": m["messaging_service_sid"],
            "num_media": "0",
            "num_segments": m["num_segments"],
            "price": None,
            "price_unit": "USD",
            "sid": m["sid"],
            "status": m["status"],
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": m["to"],
            "uri": uri,
        }


def _bound(key: str, raw: str) -> Callable[[datetime], bool]:
    """A DateSent filter. Date-only values compare by UTC day; datetimes exactly."""
    raw = raw.lstrip("<>=")
    if "T" in raw:
        moment = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        start, end = moment, moment
    else:
        day = date.fromisoformat(raw)
        start = datetime.combine(day, time(), tzinfo=UTC)
        end = start + timedelta(days=1) - timedelta(microseconds=1)
    if key == "DateSent>":
        return lambda sent: sent >= start
    if key == "DateSent<":
        return lambda sent: sent <= end
    return lambda sent: start.date() == sent.date()


def _segments(body: str) -> int:
    if all(ord(ch) < 128 for ch in body):
        return 1 if len(body) <= 160 else -(-len(body) // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
         "status": status},
        status=status,
    )

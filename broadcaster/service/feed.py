"""The public CAP feed: ``GET /cap/feed.atom`` and ``GET /cap/{id}.xml``. No token needed.

The feed is an Atom (RFC 4287) index of the current alerts whose CAP status is
``Actual``: live alerts, updates and cancels not yet past ``expires``. Exercise
and dry-run alerts never appear, and their documents are 404 here (``broadcaster
cap`` still prints them). Each document is checked against the CAP 1.2 schema
before it is served; one that fails is a 500, never an invalid public document.
An alert whose stored text XML cannot carry (a control character in a name, from
before names were checked) is left out of the feed and logged, so one bad alert
never takes the feed down for everyone.

Each document is the one stored when its alert was fired (``alerts.cap``), never
rebuilt from today's template files. Without ``[broadcaster] public_url`` nothing
here is published: every route answers 503 saying so, because links derived from
the request's ``Host`` header could be spoofed by whoever sends the request.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import defusedxml.ElementTree as SafeET
from aiohttp import web
from lxml import etree

from broadcaster.app.cap_documents import NotStored, stored_cap
from broadcaster.cap import NS as CAP_NS
from broadcaster.cap import identifier, validate
from broadcaster.clock import in_thread
from broadcaster.errors import InputError
from broadcaster.service.http import ApiError
from broadcaster.service.state import SERVICE, Service
from broadcaster.states import Mode
from broadcaster.store.records import AlertRecord
from broadcaster.timefmt import iso_seconds

log = logging.getLogger("broadcaster.service.feed")

ATOM: Final = "http://www.w3.org/2005/Atom"
CAP_TYPE: Final = "application/cap+xml"
ATOM_TYPE: Final = "application/atom+xml"
FEED_LIMIT: Final = 200
MSG_PREFIX: Final = {"Update": "تحديث · Update: ", "Cancel": "إلغاء · Cancel: "}
CANCELLED_PREFIX: Final = "أُلغي · CANCELLED: "
NO_PUBLIC_URL: Final = ("the CAP feed is not published: [broadcaster] public_url is not set in channels.toml, and "
                        "its links are never taken from a request's Host header; set public_url and restart serve")


async def current_public(service: Service) -> list[AlertRecord]:
    """Live alerts not yet expired, newest first."""
    return await service.app.store.alerts.current(Mode.LIVE, service.clock.now(), FEED_LIMIT)


def base_url(service: Service) -> str:
    """Links use the configured public URL, never the request's Host (which a client chooses).

    Without ``public_url`` the feed and the documents are not published at all: a 503
    that says why (``serve`` logs it when it starts).
    """
    if not service.config.public_url:
        raise ApiError(503, "no_public_url", NO_PUBLIC_URL)
    return service.config.public_url.rstrip("/")


async def cap(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    base_url(service)
    alert_id = request.match_info["alert_id"]
    alert = await service.app.store.alerts.find(alert_id)
    if alert is None or alert.mode != Mode.LIVE:
        # Exercise and dry-run documents are not public: the same answer as for no alert at all.
        raise web.HTTPNotFound(text=f"no public CAP document {alert_id}")
    try:
        body = await stored_cap(service.app, alert)
        await in_thread(validate, body)
    except NotStored as exc:
        raise ApiError(410, "cap_not_stored", str(exc)) from None
    except (ValueError, InputError) as exc:
        log.error("CAP document of %s is not valid: %s", alert_id, exc)
        raise ApiError(500, "internal", "the CAP document could not be built") from None
    return web.Response(body=body, content_type=CAP_TYPE, charset="utf-8")


async def atom(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = feed(service, base_url(service), await current_public(service))
    return web.Response(body=body, content_type=ATOM_TYPE, charset="utf-8")


def feed(service: Service, base: str, alerts: list[AlertRecord]) -> bytes:
    config, tz = service.config, service.config.timezone
    root = etree.Element(_q("feed"), nsmap={None: ATOM})
    root.set("{http://www.w3.org/XML/1998/namespace}lang", "ar")
    _sub(root, "id", f"{base}/cap/feed.atom")
    _sub(root, "title", f"{config.sender}: التنبيهات الحالية · current alerts")
    updated = max((a.sent_at for a in alerts), default=service.clock.now())
    _sub(root, "updated", iso_seconds(updated, tz))
    _link(root, "self", f"{base}/cap/feed.atom", ATOM_TYPE)
    author = _sub(root, "author")
    _sub(author, "name", config.sender)
    _sub(root, "generator", "broadcaster")
    cancelled_by = {ref: a for a in reversed(alerts) if a.msg_type == "Cancel" for ref in cancelled(a)}
    for alert in alerts:
        try:
            entry = _entry(service, base, alert, cancelled_by.get(alert.id))
        except ValueError as exc:  # lxml: "All strings must be XML compatible"
            log.error("alert %s is left out of the public feed: its text cannot be XML (%s)", alert.id, exc)
            continue
        root.append(entry)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def cancelled(cancel: AlertRecord) -> list[str]:
    """The alerts a cancel cancels: every one its stored CAP ``<references>`` names (the unexpired alerts of
    its thread, not only the one it follows)."""
    ids = [cancel.references] if cancel.references else []
    if cancel.cap is not None:
        try:
            refs = SafeET.fromstring(cancel.cap.encode(), forbid_dtd=True).findtext(f"{{{CAP_NS}}}references")
        except SafeET.ParseError:
            refs = None
        ids += [entry.split(",")[1].rpartition("/")[2] for entry in (refs or "").split() if entry.count(",") == 2]
    return list(dict.fromkeys(ids))


def _entry(service: Service, base: str, alert: AlertRecord, cancel: AlertRecord | None) -> Any:
    """One alert's Atom entry, built apart: text XML cannot carry spoils this entry alone (a ValueError).

    An alert whose ``cancel`` is out says so in its own entry too: a reader who sees only it is not misled.
    """
    tz = service.config.timezone
    entry = etree.Element(_q("entry"))
    url = f"{base}/cap/{alert.id}.xml"
    _sub(entry, "id", f"urn:cap:{_safe_identifier(service, alert)}")
    headline = {lang: alert.forms.get(lang, {}).get("headline", "") for lang in ("ar", "en")}
    prefix = CANCELLED_PREFIX if cancel is not None else MSG_PREFIX.get(alert.msg_type, "")
    _sub(entry, "title", f"{prefix}{headline['ar']} · {headline['en']}")
    _sub(entry, "updated", iso_seconds(cancel.sent_at if cancel is not None else alert.sent_at, tz))
    _sub(entry, "published", iso_seconds(alert.sent_at, tz))
    _link(entry, "alternate", url, CAP_TYPE)
    lines = [alert.forms.get(lang, {}).get("short", "") for lang in ("ar", "en")]
    if cancel is not None:
        lines.insert(0, f"أُلغي هذا التنبيه · This alert was cancelled ({cancel.id})")
        _link(entry, "related", f"{base}/cap/{cancel.id}.xml", CAP_TYPE)
    summary = _sub(entry, "summary", "\n".join(lines))
    summary.set("type", "text")
    _sub(entry, "category").set("term", alert.template)
    if cancel is not None:
        _sub(entry, "category").set("term", "cancelled")
    return entry


def _safe_identifier(service: Service, alert: AlertRecord) -> str:
    try:
        return identifier(service.config, alert)
    except ValueError:
        return alert.id


def _q(tag: str) -> str:
    return f"{{{ATOM}}}{tag}"


def _sub(parent: Any, tag: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, _q(tag))
    if text is not None:
        element.text = text
    return element


def _link(parent: Any, rel: str, href: str, media_type: str) -> None:
    link = _sub(parent, "link")
    link.set("rel", rel)
    link.set("href", href)
    link.set("type", media_type)

"""CAP 1.2 documents: one ``<alert>`` per alert, one ``<info>`` per language, Arabic first.

:func:`cap_document` builds the document with lxml, in the exact element order of
the OASIS schema's ``xs:sequence`` (``language`` before ``category``; ``expires``
after ``effective``/``onset``; ``polygon`` before ``circle`` before ``geocode``).
:func:`validate` checks a document against the schema shipped in
``broadcaster/data/CAP-v1.2.xsd``.

Untrusted XML is first parsed with :func:`defusedxml.ElementTree.fromstring`
(no DTD, entity or external reference allowed), then re-parsed for schema
validation with a hardened lxml parser (no entity resolution, no DTD loading,
no network), since XSD validation needs an lxml tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any, Final

import defusedxml.ElementTree as SafeET
from lxml import etree

from broadcaster.config import Config
from broadcaster.states import CAP_STATUS
from broadcaster.store.records import AlertRecord
from broadcaster.templates.catalogue import LANGUAGES, Template
from broadcaster.templates.gazetteer import Gazetteer, Place
from broadcaster.timefmt import iso_seconds

NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
CAP_LANGUAGE: Final = {"ar": "ar-AE", "en": "en-AE"}
WHOLE_AREA: Final = "DXB"  # the gazetteer code used when an alert names no area
WHOLE_AREA_NAMES: Final = {"ar": "دبي", "en": "Dubai"}  # if the gazetteer lacks it
NOTES: Final = {
    "Exercise": "EXERCISE · تمرين: this message is an exercise; no action is required.",
    "Test": "TEST · تجربة: dry-run rehearsal; nothing was sent to the public.",
}
INFO_VALUES: Final = ("category", "urgency", "severity", "certainty")  # a cancel keeps its original's
# CAP 1.2 section 3.2.1: identifier and sender must not hold spaces, commas or < &.
_FORBIDDEN: Final = frozenset(" ,<&\t\r\n")
_HARDENED: Final = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def identifier(config: Config, alert: AlertRecord) -> str:
    """The CAP ``<identifier>`` of an alert: ``sender/alert-id`` (as in the webhook payload)."""
    return _checked("identifier", f"{config.sender}/{alert.id}")


def reference(config: Config, original: AlertRecord) -> str:
    """A CAP ``references`` entry for the original alert: ``sender,identifier,sent``."""
    sent = iso_seconds(original.sent_at, config.timezone)
    return f"{_checked('sender', config.sender)},{identifier(config, original)},{sent}"


def web_url(config: Config, alert: AlertRecord) -> str | None:
    """The ``<web>`` of an alert: its public CAP document under ``public_url`` (None without one)."""
    if not config.public_url:
        return None
    return f"{config.public_url.rstrip('/')}/cap/{alert.id}.xml"


def contact(config: Config) -> dict[str, str]:
    """The ``<contact>`` per language: ``[broadcaster] contact``, else the authority, else the sender."""
    return dict(config.contact or config.authority or {lang: config.sender for lang in LANGUAGES})


def info_values(document: bytes | str) -> dict[str, Any]:
    """The category, urgency, severity, certainty and event (per language) of a stored CAP document.

    A cancel takes them from its original's document, as the original was published.
    """
    raw = document.encode() if isinstance(document, str) else document
    root = SafeET.fromstring(raw, forbid_dtd=True)
    found: dict[str, Any] = {"event": {}}
    for info in root.findall(_q("info")):
        lang = next((k for k, v in CAP_LANGUAGE.items() if v == info.findtext(_q("language"))), None)
        for key in INFO_VALUES:
            found.setdefault(key, info.findtext(_q(key)))
        if lang is not None:
            found["event"][lang] = info.findtext(_q("event"))
    return found


def cap_document(
    alert: AlertRecord, template: Template, gazetteer: Gazetteer, config: Config, *,
    original: AlertRecord | None = None, thread: Sequence[AlertRecord] = (),
    original_values: Mapping[str, Any] | None = None,
) -> bytes:
    """The CAP 1.2 XML document of ``alert`` (UTF-8, with an XML declaration).

    It is built once, when the alert is planned, and stored with it (``alerts.cap``):
    what the public reads later is what was fired, never today's template files.

    ``original`` is required for an Update or Cancel. ``<references>`` names it and
    every other alert of ``thread`` (the unexpired alerts of its thread), each as
    ``sender,identifier,sent``, oldest first. A Cancel carries ``original_values``
    (its original's category, urgency, severity, certainty and event, from
    :func:`info_values`) as Google's profile expects of a cancel, not Unknowns.
    Times carry the configured zone's numeric offset at seconds precision (CAP
    forbids ``Z``). Raises ValueError when the inputs cannot make a valid document.
    """
    if template.id != alert.template:
        raise ValueError(f"alert {alert.id} was fired from template {alert.template!r}, not {template.id!r}")
    if alert.mode not in CAP_STATUS:
        raise ValueError(f"alert {alert.id}: unknown mode {alert.mode!r}")
    if alert.msg_type not in ("Alert", "Update", "Cancel"):
        raise ValueError(f"alert {alert.id}: msgType {alert.msg_type!r} is not Alert, Update or Cancel")
    if alert.msg_type != "Alert" and (original is None or original.id != alert.references):
        raise ValueError(f"alert {alert.id} ({alert.msg_type}) follows up {alert.references!r}: pass that original")
    missing = [lang for lang in LANGUAGES if not alert.forms.get(lang, {}).get("headline")]
    if missing:
        raise ValueError(f"alert {alert.id} has no rendered {missing[0]} text")

    tz = config.timezone
    status = CAP_STATUS[alert.mode]
    values: dict[str, Any] = {**template.cap, "event": dict(template.event)}
    if alert.msg_type == "Cancel" and original_values:
        values.update({k: v for k, v in original_values.items() if k in (*INFO_VALUES, "event") and v})
    root = etree.Element(_q("alert"), nsmap={None: NS})
    _sub(root, "identifier", identifier(config, alert))
    _sub(root, "sender", _checked("sender", config.sender))
    _sub(root, "sent", iso_seconds(alert.sent_at, tz))
    _sub(root, "status", status)
    _sub(root, "msgType", alert.msg_type)
    _sub(root, "scope", "Public")
    if status in NOTES:
        _sub(root, "note", NOTES[status])
    if original is not None and alert.msg_type != "Alert":
        referenced = {a.id: a for a in (original, *thread) if a.id != alert.id}
        ordered = sorted(referenced.values(), key=lambda a: (a.sent_at, a.id))
        _sub(root, "references", " ".join(reference(config, a) for a in ordered))

    expires = iso_seconds(alert.expires_at, tz)
    web, contacts = web_url(config, alert), contact(config)
    for lang in LANGUAGES:  # Arabic first
        form = alert.forms[lang]
        info = _sub(root, "info")
        _sub(info, "language", CAP_LANGUAGE[lang])
        _sub(info, "category", values["category"])
        _sub(info, "event", values["event"].get(lang) or template.event[lang])
        _sub(info, "responseType", template.cap["responseType"])
        _sub(info, "urgency", values["urgency"])
        _sub(info, "severity", values["severity"])
        _sub(info, "certainty", values["certainty"])
        _pair(info, "eventCode", "broadcaster:template", template.id)
        _sub(info, "expires", expires)
        _sub(info, "senderName", config.sender)
        _sub(info, "headline", form["headline"])
        _sub(info, "description", form.get("long") or form["headline"])
        if template.instruction:
            _sub(info, "instruction", template.instruction[lang])
        if web:
            _sub(info, "web", web)
        _sub(info, "contact", contacts[lang])
        _pair(info, "parameter", "broadcaster:templateSha256", alert.template_hash)
        for name, polygons, circles, geocodes in _areas(alert.areas, gazetteer, lang):
            area = _sub(info, "area")
            _sub(area, "areaDesc", name)
            for polygon in polygons:
                _sub(area, "polygon", polygon)
            for circle in circles:
                _sub(area, "circle", circle)
            for value_name, value in geocodes:
                _pair(area, "geocode", value_name, value)
    return XML_DECLARATION + bytes(etree.tostring(root, encoding="UTF-8", pretty_print=True))


Area = tuple[str, list[str], list[str], list[tuple[str, str]]]  # areaDesc, polygons, circles, geocodes


def _areas(codes: tuple[str, ...], gazetteer: Gazetteer, lang: str) -> Iterator[Area]:
    """One CAP area per code. A road carries the geometry of the areas it passes through."""
    if not codes:
        whole = gazetteer.get(WHOLE_AREA)
        if whole is None:
            yield WHOLE_AREA_NAMES[lang], [], [], []
            return
        codes = (WHOLE_AREA,)
    for code in codes:
        place = gazetteer.get(code)
        if place is None:  # the gazetteer changed since the alert was fired: keep its code
            yield code, [], [], []
            continue
        parts: list[Place] = [place]
        if place.type == "road":
            parts += [p for p in (gazetteer.get(a) for a in place.areas) if p is not None]
        yield (
            place.name(lang),
            [p.polygon for p in parts if p.polygon],
            [p.circle for p in parts if p.circle],
            [p.geocode for p in parts if p.geocode],
        )


def validate(document: bytes) -> None:
    """Check ``document`` against the CAP 1.2 schema; raise ValueError listing every error."""
    try:
        SafeET.fromstring(document, forbid_dtd=True)  # refuses DTDs, entities and external references
        tree = etree.fromstring(document, etree.XMLParser(**_HARDENED))
    except (etree.XMLSyntaxError, SafeET.ParseError, ValueError) as exc:
        raise ValueError(f"not a well-formed, safe XML document: {exc}") from None
    schema = _schema()
    if not schema.validate(tree):
        errors = "\n".join(f"  line {e.line}: {e.message.replace('{' + NS + '}', 'cap:')}" for e in schema.error_log)
        raise ValueError(f"not a valid CAP 1.2 document:\n{errors}")


@cache
def _schema() -> Any:
    """The OASIS CAP 1.2 schema shipped with the package, loaded once."""
    xsd = files("broadcaster").joinpath("data", "CAP-v1.2.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(xsd, etree.XMLParser(**_HARDENED)))


def _checked(field: str, value: str) -> str:
    bad = sorted(_FORBIDDEN & set(value))
    if not value or bad:
        raise ValueError(f"CAP {field} {value!r} must be non-empty, without spaces, commas, '<' or '&'")
    return value


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _sub(parent: Any, tag: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, _q(tag))
    if text is not None:
        element.text = text
    return element


def _pair(parent: Any, tag: str, value_name: str, value: str) -> None:
    element = _sub(parent, tag)
    _sub(element, "valueName", value_name)
    _sub(element, "value", value)

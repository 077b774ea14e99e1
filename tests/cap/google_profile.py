"""Google's Public Alerts CAP profile, written as checks for the test suite.

These rules are written from Google's published guidance for CAP feeds
("Common Alerting Protocol (CAP) guidelines" and "CAP XML reference" of Google
Public Alerts, developers.google.com/public-alerts; and the checks of Google's
``cap-library`` validator for its Google profile), from memory: no network is
reachable from here. Each rule cites what it follows. ``problems(document)`` lists
every rule a CAP 1.2 document breaks; an empty list means it passes. The OASIS
schema is checked apart (:func:`broadcaster.cap.validate`): these rules come on top.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET

NS: Final = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
HEADLINE_MAX: Final = 140  # Google: "keep the headline under 140 characters" (it is shown as a title / a tweet)
# CAP 1.2 §3.3.2 (dateTime with a numeric offset, no "Z"); Google rejects times without a zone.
CAP_TIME: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
# RFC 3066 / BCP 47 language tag, as CAP <language> requires and Google uses to pick the info to show.
LANGUAGE: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
# CAP 1.2 §3.2.1: identifier and sender hold no spaces, commas or restricted characters (< &).
NO_SPACES: Final = re.compile(r"^[^\s,<&]+$")
# Google: <sender> should identify the originator as a domain name (or an email address).
DOMAIN: Final = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+$")
# CAP 1.2 §3.2.4: WGS 84 "lat,lon" pairs; a polygon is closed, with at least four pairs.
PAIR: Final = re.compile(r"^-?\d{1,2}(\.\d+)?,-?\d{1,3}(\.\d+)?$")
CIRCLE: Final = re.compile(r"^-?\d{1,2}(\.\d+)?,-?\d{1,3}(\.\d+)?\s+\d+(\.\d+)?$")


def _text(element: Element, tag: str) -> str | None:
    found = element.find(f"cap:{tag}", NS)
    return found.text.strip() if found is not None and found.text else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value and CAP_TIME.match(value) else None


def problems(document: bytes) -> list[str]:
    """Every Google Public Alerts profile rule ``document`` breaks, each naming the element."""
    root = SafeET.fromstring(document, forbid_dtd=True)
    found: list[str] = []
    identifier, sender = _text(root, "identifier"), _text(root, "sender")
    sent = _time(_text(root, "sent"))
    msg_type = _text(root, "msgType")
    if not identifier or not NO_SPACES.match(identifier):
        found.append(f"<identifier> {identifier!r}: required, without spaces, commas, '<' or '&'")
    if not sender or not NO_SPACES.match(sender) or not (DOMAIN.match(sender) or EMAIL.match(sender)):
        found.append(f"<sender> {sender!r}: a domain name or an email address, without spaces or commas")
    if sent is None:
        found.append("<sent>: required, with seconds and a numeric time-zone offset (no 'Z')")
    if _text(root, "scope") != "Public":
        found.append("<scope>: Google shows Public alerts only")

    # Google: an Update or Cancel names what it updates or cancels in <references>, each entry
    # "sender,identifier,sent", entries separated by a space; a message never references itself.
    refs = _text(root, "references")
    if msg_type in ("Update", "Cancel"):
        if not refs:
            found.append(f"<references>: required for msgType {msg_type}")
        for entry in (refs or "").split():
            parts = entry.split(",")
            if len(parts) != 3 or not all(parts) or not CAP_TIME.match(parts[2]):
                found.append(f"<references> entry {entry!r}: must be sender,identifier,sent")
            elif parts[1] == identifier:
                found.append(f"<references> entry {entry!r}: a message cannot reference itself")
            elif sent is not None and datetime.fromisoformat(parts[2]) > sent:
                found.append(f"<references> entry {entry!r}: sent after the message that references it")
        entries = (refs or "").split()
        if len(entries) != len(set(entries)):
            found.append("<references>: an entry is listed twice")
    elif refs:
        found.append("<references>: an Alert references nothing")

    infos = root.findall("cap:info", NS)
    if not infos:
        found.append("<info>: at least one is required")
    languages = [_text(info, "language") for info in infos]
    if len(languages) != len(set(languages)):
        found.append("<info>: one per language; a language is repeated")
    for index, info in enumerate(infos, start=1):
        where = f"<info> {index} ({_text(info, 'language')})"
        language = _text(info, "language")
        if not language or not LANGUAGE.match(language):
            found.append(f"{where} <language>: required, an RFC 3066 tag such as ar-AE")
        # Google discourages Unknown: an alert's urgency, severity and certainty decide how it is shown.
        for field in ("urgency", "severity", "certainty"):
            if _text(info, field) in (None, "Unknown"):
                found.append(f"{where} <{field}>: must be known, not Unknown")
        if not _text(info, "event"):
            found.append(f"{where} <event>: required")
        # Google requires <expires> in each info, after <sent> (and after <effective>/<onset> if given).
        expires = _time(_text(info, "expires"))
        if expires is None:
            found.append(f"{where} <expires>: required, with a numeric time-zone offset")
        elif sent is not None and expires <= sent:
            found.append(f"{where} <expires>: must be after <sent>")
        for start in ("effective", "onset"):
            begins = _time(_text(info, start))
            if begins is not None and expires is not None and expires <= begins:
                found.append(f"{where} <expires>: must be after <{start}>")
        headline = _text(info, "headline")
        if not headline:
            found.append(f"{where} <headline>: required")
        elif len(headline) > HEADLINE_MAX:
            found.append(f"{where} <headline>: {len(headline)} characters, over Google's {HEADLINE_MAX}")
        if not _text(info, "description"):
            found.append(f"{where} <description>: required")
        elif headline and _text(info, "description") == headline:
            found.append(f"{where} <description>: must say more than the headline")
        if not _text(info, "instruction"):  # Google: recommended; shown as "what to do"
            found.append(f"{where} <instruction>: required here (Google recommends it)")
        web = _text(info, "web")  # Google: required, a full absolute URL of a page about this alert
        if not web or not re.match(r"^https://[^\s/]+\.[^\s/]+(/\S*)?$", web):
            found.append(f"{where} <web>: required, an absolute https URL")
        if not _text(info, "contact"):  # Google: recommended
            found.append(f"{where} <contact>: required here (Google recommends it)")
        if not _text(info, "senderName"):  # Google: recommended, the human-readable issuer
            found.append(f"{where} <senderName>: required here (Google recommends it)")
        areas = info.findall("cap:area", NS)
        if not areas:
            found.append(f"{where} <area>: at least one is required")
        for area in areas:
            found += _area_problems(where, area)
    return found


def _area_problems(where: str, area: Element) -> list[str]:
    """Google: every <area> has an <areaDesc> and a geometry it can map: a polygon, a circle or a geocode."""
    found = []
    desc = _text(area, "areaDesc")
    if not desc:
        found.append(f"{where} <area>: <areaDesc> is required")
    polygons = [p.text or "" for p in area.findall("cap:polygon", NS)]
    circles = [c.text or "" for c in area.findall("cap:circle", NS)]
    geocodes = area.findall("cap:geocode", NS)
    if not (polygons or circles or geocodes):
        found.append(f"{where} <area> {desc!r}: needs a <polygon>, <circle> or <geocode>")
    for polygon in polygons:
        pairs = polygon.split()
        if len(pairs) < 4 or pairs[0] != pairs[-1] or not all(PAIR.match(p) for p in pairs):
            found.append(f"{where} <polygon> of {desc!r}: at least 4 lat,lon pairs, the first repeated last")
            continue
        for pair in pairs:
            lat, lon = (float(x) for x in pair.split(","))
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                found.append(f"{where} <polygon> of {desc!r}: {pair} is not a WGS 84 point")
    for circle in circles:
        if not CIRCLE.match(circle.strip()):
            found.append(f"{where} <circle> of {desc!r}: must be 'lat,lon radius'")
    for geocode in geocodes:
        if not _text(geocode, "valueName") or not _text(geocode, "value"):
            found.append(f"{where} <geocode> of {desc!r}: needs valueName and value")
    return found

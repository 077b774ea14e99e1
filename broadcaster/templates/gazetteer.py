"""Bilingual names of the places officers pick from: roads and areas.

A ``place`` variable takes a gazetteer code, so both languages always name the
same place, spelled the approved way. Areas may carry a CAP geocode, polygon or
circle for the ``<area>`` block of the CAP document.

Names are rendered into alert texts and the CAP feed, so they obey the same
content rules as typed text (:mod:`broadcaster.templates.content`): no bidi or
control character, no link, phone number or IP address, no emoji. A gazetteer
breaking one does not load, and every such name is listed at once. Which names
a template can render are part of its approval (its ``content_hash``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.errors import TemplateError
from broadcaster.templates.content import control_problem, text_problem
from broadcaster.text.files import FileProblem, read_text

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_POINT = re.compile(r"^-?\d{1,2}(\.\d+)?,-?\d{1,3}(\.\d+)?$")


@dataclass(frozen=True, slots=True)
class Place:
    code: str
    type: str  # "road" | "area"
    names: Mapping[str, str]  # language -> name
    areas: tuple[str, ...]  # for a road: the areas it passes through; for an area: itself
    within: str | None = None  # an area: the larger area that contains it
    geocode: tuple[str, str] | None = None  # (valueName, value)
    polygon: str | None = None
    circle: str | None = None

    def name(self, language: str) -> str:
        return self.names[language]


@dataclass(frozen=True)
class Gazetteer:
    places: Mapping[str, Place]
    path: Path | None = None

    def __contains__(self, code: object) -> bool:
        return code in self.places

    def __iter__(self) -> Iterator[Place]:
        return iter(self.places.values())

    def get(self, code: str) -> Place | None:
        return self.places.get(code)

    def of_type(self, place_type: str | None) -> list[Place]:
        return [p for p in self.places.values() if place_type is None or p.type == place_type]

    def area_codes(self) -> set[str]:
        return {p.code for p in self.places.values() if p.type == "area"}

    def ancestors(self, code: str) -> list[str]:
        """The areas that contain ``code``, nearest first."""
        found: list[str] = []
        place = self.places.get(code)
        while place is not None and place.within and place.within not in found:
            found.append(place.within)
            place = self.places.get(place.within)
        return found

    def reach(self, code: str) -> set[str]:
        """Area codes an alert for ``code`` concerns: the place's own areas, every area
        inside them, and every area that contains them (a channel or a phone registered
        for the whole emirate must hear about a closure in one of its districts)."""
        place = self.places.get(code)
        own = set(place.areas) if place is not None and place.areas else {code}
        reach = set(own)
        for area in own:
            reach.update(self.ancestors(area))
        for other in self.places.values():
            if other.type == "area" and own & set(self.ancestors(other.code)):
                reach.add(other.code)
        return reach


def load_gazetteer(path: Path) -> Gazetteer:
    """Load ``gazetteer.toml``; every error names the file and the place code."""
    try:
        raw = tomllib.loads(read_text(path, "gazetteer file"))
    except FileProblem as exc:
        raise TemplateError(str(exc), where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"not valid TOML: {exc}", where=str(path)) from None
    tables = raw.get("places")
    if not isinstance(tables, dict) or not tables:
        raise TemplateError("no [places.CODE] tables", where=str(path))
    places = {code: _place(code, table, path) for code, table in tables.items()}
    unsafe = [problem for place in places.values() for problem in _word_problems(place)]
    if unsafe:
        raise TemplateError("names break the content rules, so nothing can render them:\n  "
                            + "\n  ".join(unsafe), where=str(path))
    areas = {p.code for p in places.values() if p.type == "area"}
    for place in places.values():
        for area in place.areas:
            if area not in areas:
                raise TemplateError(f"place {place.code!r}: key 'areas': unknown area {area!r}", where=str(path))
        if place.within is not None and (place.type != "area" or place.within not in areas):
            raise TemplateError(f"place {place.code!r}: key 'within': must name an area, and only an area "
                                    f"may be within another", where=str(path))
    gazetteer = Gazetteer(places=places, path=path)
    for place in places.values():
        if place.code in gazetteer.ancestors(place.code):
            raise TemplateError(f"place {place.code!r}: key 'within': areas contain each other in a loop",
                                where=str(path))
    return gazetteer


def _word_problems(place: Place) -> list[str]:
    """Every content rule the place's names (and CAP geocode) break, one line each."""
    problems = []
    for lang, name in place.names.items():
        problem = text_problem(name, lang)
        if problem is not None:
            problems.append(f"place {place.code!r}: key {lang!r}: {problem}")
    for key, value in zip(("valueName", "value"), place.geocode or (), strict=False):
        problem = control_problem(value)
        if problem is not None:
            problems.append(f"place {place.code!r}: key 'geocode' {key}: {problem}")
    return problems


def _place(code: str, table: Any, path: Path) -> Place:
    where = f"{path}: place {code!r}"
    if not _CODE.match(code):
        raise TemplateError("codes use letters, digits, '-' and '_' only", where=where)
    if not isinstance(table, dict):
        raise TemplateError("must be a table", where=where)
    place_type = table.get("type")
    if place_type not in ("road", "area"):
        raise TemplateError("key 'type': must be \"road\" or \"area\"", where=where)
    names: dict[str, str] = {}
    for lang in ("ar", "en"):
        name = table.get(lang)
        if not isinstance(name, str) or not name.strip():
            raise TemplateError(f"key {lang!r}: a non-empty name is required", where=where)
        names[lang] = name.strip()
    areas = table.get("areas", [code] if place_type == "area" else [])
    if not isinstance(areas, list) or not all(isinstance(a, str) for a in areas):
        raise TemplateError("key 'areas': must be a list of area codes", where=where)
    geocode = table.get("geocode")
    geo: tuple[str, str] | None = None
    if geocode is not None:
        if not isinstance(geocode, dict) or not {"valueName", "value"} <= set(geocode):
            raise TemplateError("key 'geocode': needs valueName and value", where=where)
        geo = (str(geocode["valueName"]), str(geocode["value"]))
    polygon = table.get("polygon")
    if polygon is not None:
        points = str(polygon).split()
        if len(points) < 4 or points[0] != points[-1] or not all(_POINT.match(p) for p in points):
            raise TemplateError("key 'polygon': needs at least 4 'lat,lon' points, first == last", where=where)
    within = table.get("within")
    if within is not None and not isinstance(within, str):
        raise TemplateError("key 'within': must be an area code", where=where)
    circle = table.get("circle")
    if circle is not None:
        parts = str(circle).split()
        if len(parts) != 2 or not _POINT.match(parts[0]) or not re.match(r"^\d+(\.\d+)?$", parts[1]):
            raise TemplateError("key 'circle': must be 'lat,lon radius_km'", where=where)
    return Place(
        code=code,
        type=place_type,
        names=names,
        areas=tuple(areas),
        within=within,
        geocode=geo,
        polygon=str(polygon) if polygon else None,
        circle=str(circle) if circle else None,
    )

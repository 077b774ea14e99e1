"""Issue 12, point 6: a variable's ``label = {ar = "…", en = "…"}``, what the console's form calls it.

Optional in the file format; every shipped template declares one for every variable, and the template detail
(``templates show --json``, ``GET /api/templates/{id}``) carries it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.errors import TemplateError
from broadcaster.templates.catalogue import Catalogue, template_detail
from broadcaster.templates.fields import MAX_LABEL, parse_variable


def _table(**extra: Any) -> dict[str, Any]:
    return {"name": "road", "type": "place", "max_length": 32, "required": True, "example": "E11", **extra}


def test_every_shipped_variable_has_an_arabic_and_an_english_label(shipped: Catalogue) -> None:
    for template_id in shipped.ids():
        for variable in shipped.get(template_id).variables:
            where = f"{template_id}.{variable.name}"
            assert set(variable.label) == {"ar", "en"}, where
            assert any("\u0600" <= ch <= "\u06ff" for ch in variable.label["ar"]), where
            assert variable.label["en"] != variable.name, where  # a word for people, not the identifier


def test_the_template_detail_carries_each_label(shipped: Catalogue) -> None:
    detail = template_detail(shipped.get("road_closure"))
    labels = {v["name"]: v["label"] for v in detail["variables"]}
    assert labels["detour"] == {"ar": "الطريق البديل", "en": "Detour"}
    assert labels["starts"] == {"ar": "بداية الإغلاق", "en": "Closure starts"}


def test_a_variable_without_a_label_has_none_in_its_detail() -> None:
    variable = parse_variable(_table(), 1, "t.toml")
    assert variable.label == {}


def test_a_label_is_parsed() -> None:
    variable = parse_variable(_table(label={"ar": "الطريق", "en": "Road"}), 1, "t.toml")
    assert variable.label == {"ar": "الطريق", "en": "Road"}


@pytest.mark.parametrize("label", [
    "Road",  # not a table
    {"ar": "الطريق"},  # one language
    {"ar": "الطريق", "en": "Road", "fr": "Route"},  # another language
    {"ar": "Road", "en": "Road"},  # no Arabic in the Arabic label
    {"ar": "", "en": "Road"},
    {"ar": "الطريق", "en": " Road"},
    {"ar": "الطريق", "en": 7},
    {"ar": "الطريق\u202e", "en": "Road"},  # a bidi control
    {"ar": "الطريق", "en": "R" * (MAX_LABEL + 1)},
])
def test_a_bad_label_is_a_template_error_naming_the_variable(label: Any) -> None:
    with pytest.raises(TemplateError, match="variable 'road': label"):
        parse_variable(_table(label=label), 1, "t.toml")


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80), st.text(max_size=80))
def test_any_label_is_either_accepted_as_given_or_refused_with_a_template_error(ar: str, en: str) -> None:
    try:
        variable = parse_variable(_table(label={"ar": ar, "en": en}), 1, "t.toml")
    except TemplateError as exc:
        assert "label" in str(exc)
    else:
        assert variable.label == {"ar": ar, "en": en}
        assert 0 < len(ar) <= MAX_LABEL and 0 < len(en) <= MAX_LABEL
        assert ar == ar.strip() and en == en.strip()

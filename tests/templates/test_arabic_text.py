"""The shipped texts read as a UAE authority would publish them (issue 12, point 5).

Each case is a correction from a careful reading: number agreement, the right words,
and dates as "الاثنين 30 نوفمبر 2026 الساعة 3:56 مساءً" (no comma inside, a no-break
space before صباحاً/مساءً, Western digits). Values are compared with their isolates
removed: the isolates are the bidi tests' subject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from broadcaster.cards.content import card_contents
from broadcaster.channels.registry import KINDS
from broadcaster.config import load_config
from broadcaster.states import Mode
from broadcaster.templates.catalogue import Catalogue, Template
from broadcaster.templates.render import Forms, render_forms
from broadcaster.templates.variables import example_inputs, resolve
from tests.templates.support import DUBAI, SHIPPED_CHANNELS, SHIPPED_TEMPLATES

CATALOGUE = Catalogue(SHIPPED_TEMPLATES, KINDS)
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=DUBAI).timestamp()
NBSP = "\u00a0"
ISOLATES = re.compile("[\u2066-\u2069]")


def forms_of(template_id: str, **overrides: str | Mapping[str, str]) -> Forms:
    template = CATALOGUE.get(template_id)
    inputs = example_inputs(template, NOW, DUBAI)
    for name, value in overrides.items():
        inputs[name] = {"ar": value, "en": value} if isinstance(value, str) else dict(value)
    values = resolve(template, CATALOGUE.gazetteer, inputs, DUBAI, now=NOW)
    rendered = render_forms(template, values.display, exercise=False)
    return {lang: {form: ISOLATES.sub("", text) for form, text in texts.items()} for lang, texts in rendered.items()}


def test_dust_storm_visibility_agrees_with_any_number_and_has_no_latin_thousands_comma() -> None:
    forms = forms_of("dust_storm", visibility="1000")
    for form in ("short", "long"):
        assert "أقل من 1000 م." in forms["ar"][form]  # the unit symbol agrees with 80, 500 or 1000 alike
        assert "متر" not in forms["ar"][form] and "1,000" not in forms["ar"][form]
    assert "below 1,000 metres" in forms["en"]["short"]
    assert "أقل من 80 م." in forms_of("dust_storm", visibility="80")["ar"]["short"]


def test_a_dust_storm_is_named_as_one_in_the_cancel_and_the_all_clear() -> None:
    cancel = forms_of("cancel", original_event="dust_storm")
    assert "«تحذير من العاصفة الغبارية»" in cancel["ar"]["headline"]
    assert '"Dust storm warning"' in cancel["en"]["headline"]
    clear = forms_of("all_clear", event="storm")
    assert "انتهاء التحذير من العاصفة الغبارية في" in clear["ar"]["headline"]
    assert "the dust storm warning in" in clear["en"]["headline"]


def test_dates_read_as_a_uae_authority_writes_them() -> None:
    sent = "2026-11-30T15:56:00+04:00"
    cancel = forms_of("cancel", original_sent=sent)
    assert f"الصادر يوم الاثنين 30 نوفمبر 2026 الساعة 3:56{NBSP}مساءً، فقد أُرسل بالخطأ" in cancel["ar"]["short"]
    assert "issued on Monday 30 November 2026, 3:56 PM." in cancel["en"]["short"]  # English stays as it was
    morning = forms_of("road_closure", starts="2026-12-01T09:05:00+04:00", ends="2026-12-02T21:30:00+04:00")
    assert (f"من الثلاثاء 1 ديسمبر 2026 الساعة 9:05{NBSP}صباحاً حتى الأربعاء 2 ديسمبر 2026 الساعة "
            f"9:30{NBSP}مساءً.") in morning["ar"]["short"]


def test_the_cards_show_times_as_the_texts_do() -> None:
    config = load_config(SHIPPED_CHANNELS, KINDS)
    template: Template = CATALOGUE.get("road_closure")
    sent_at = datetime(2026, 11, 30, 15, 56, tzinfo=DUBAI).timestamp()
    contents = card_contents(config, template, CATALOGUE.gazetteer, alert_id="20261130-155600-ab12cd",
                             mode=Mode.LIVE, msg_type="Alert", sent_at=sent_at, expires_at=sent_at + 3600,
                             areas=["DXB"], forms=forms_of("road_closure"))
    facts = dict(contents["ar"].facts)
    assert f"الاثنين 30 نوفمبر 2026 الساعة 3:56{NBSP}مساءً" in facts.values()
    assert "Monday 30 November 2026, 3:56 PM" in dict(contents["en"].facts).values()


def test_earthquake_wording() -> None:
    forms = forms_of("earthquake", magnitude="5.4")
    assert forms["ar"]["headline"].startswith("زلزال بقوة 5.4 درجة على مقياس ريختر شعر به السكان في")
    assert "درجة على مقياس ريختر" in forms["ar"]["short"] and "درجة على مقياس ريختر" in forms["ar"]["long"]
    assert "الانبطاح أرضاً" in forms["ar"]["long"] and "الانحناء إلى الأرض" not in forms["ar"]["long"]
    assert "الإسعافات الأولية إن أمكن." in forms["ar"]["long"] and "عند الإمكان" not in forms["ar"]["long"]


def test_road_closure_detour_label_is_right_for_one_road_or_several() -> None:
    two = {"ar": "شارع الخيل وشارع الإمارات", "en": "Al Khail Road and Emirates Road"}
    forms = forms_of("road_closure", detour=two)
    for form in ("short", "long"):
        assert f"المسار البديل: {two['ar']}." in forms["ar"][form]
        assert "الطريق البديل" not in forms["ar"][form]
    assert forms["en"]["long"].startswith("The authorities announce that Sheikh Zayed Road will be closed")
    assert "competent" not in forms["en"]["long"]

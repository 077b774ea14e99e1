"""``templates check``: placeholders, variables, examples and the worst case per channel."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from broadcaster.channels.registry import targets
from broadcaster.channels.x import XChannel
from broadcaster.templates.catalogue import Catalogue
from broadcaster.templates.check import check_catalogue, check_template, worst_display
from broadcaster.templates.render import PDI, RLI, inert_isolates_dropped, render_forms
from broadcaster.templates.variables import example_inputs, resolve
from broadcaster.templates.verify_line import with_verify_line, worst_code
from broadcaster.text import lengths
from tests.support import Loaded
from tests.templates.support import DEFAULT_TARGETS, DUBAI, PUBLIC_URL, approve_as_is, edit, render_kind, set_kinds

WHEN = datetime(2026, 11, 22, 9, 30, tzinfo=DUBAI)
STALE = "[approval] sha256: stale"


def problems_of(catalogue: Catalogue, template_id: str, app: Loaded | None = None) -> list[str]:
    """check_template for one template, against the shipped channels (or the default targets)."""
    against = targets(app.config.channels) if app else DEFAULT_TARGETS
    return check_template(catalogue.get(template_id), catalogue.gazetteer, DUBAI, against, public_url=PUBLIC_URL)


def test_the_shipped_road_closure_has_no_problems(shipped: Catalogue, shipped_app: Loaded) -> None:
    assert problems_of(shipped, "road_closure", shipped_app) == []


def test_placeholder_mismatch_between_languages_names_the_form(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), "Detour: {detour}.", "Use the alternative route.")
    problems = problems_of(catalogue, "road_closure")
    mismatch = [p for p in problems if "different placeholders" in p]
    assert mismatch == [
        "[text] short: Arabic and English use different placeholders (only in ar: ['detour']; only in en: -)"
    ]
    assert STALE in "\n".join(problems)


def test_a_placeholder_used_only_in_english_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), 'headline = "{road} closed due to {reason}"',
         'headline = "{road} closed due to {reason} from {starts}"')
    problems = problems_of(catalogue, "road_closure")
    assert any(p.startswith("[text] headline:") and "only in en: ['starts']" in p for p in problems), problems


def test_an_unknown_placeholder_is_reported_in_each_language(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    edit(path, 'headline = "إغلاق {road} بسبب {reason}"', 'headline = "إغلاق {road} بسبب {reason} {lane}"')
    edit(path, 'headline = "{road} closed due to {reason}"', 'headline = "{road} closed due to {reason} {lane}"')
    problems = problems_of(catalogue, "road_closure")
    assert "[text.ar] headline: unknown variable {lane}" in problems
    assert "[text.en] headline: unknown variable {lane}" in problems
    assert not any("different placeholders" in p for p in problems)


def test_a_stray_brace_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), "Alternative route: {detour}.", "Alternative route: {Detour}.")
    problems = problems_of(catalogue, "road_closure")
    assert "[text.en] long: a brace that is not a {variable} placeholder" in problems


def test_a_link_in_template_text_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), "- Follow official channels for updates.",
         "- Follow https://rta.example for updates.")
    problems = problems_of(catalogue, "road_closure")
    assert "[text.en] long: links in template text need a url variable" in problems


LANE = """[[variables]]
name = "lane"
type = "text"
max_length = 20
required = false
examples = { ar = "المسار الأيسر", en = "left lane" }

[text.ar]"""


def test_a_declared_but_unused_variable_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), "[text.ar]", LANE)
    problems = problems_of(catalogue, "road_closure")
    assert "variable 'lane': declared but never used in any text" in problems


def test_an_invalid_enum_example_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), 'example = "maintenance"', 'example = "roadworks"')
    problems = problems_of(catalogue, "road_closure")
    assert any(
        p.startswith("examples: ") and "'reason'" in p and "'roadworks' is not one of maintenance, accident" in p
        for p in problems
    ), problems


def test_an_example_place_of_the_wrong_type_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("flood_warning"), 'example = "DXB-HATTA"', 'example = "E11"')
    problems = problems_of(catalogue, "flood_warning")
    assert any(p.startswith("examples: ") and "'area'" in p and "'E11'" in p for p in problems), problems


def test_a_gazetteer_name_longer_than_max_length_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), "max_length = 32", "max_length = 20")
    problems = problems_of(catalogue, "road_closure")
    assert ("variable 'road': place 'E311' is 30 characters in en, over max_length 20") in problems


def test_an_enum_label_longer_than_max_length_is_reported(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), "max_length = 24", "max_length = 12")
    problems = problems_of(catalogue, "road_closure")
    assert "variable 'reason': choice 'flooding' is 19 characters in ar, over max_length 12" in problems


def test_a_datetime_max_length_too_short_for_real_dates_is_reported(catalogue: Catalogue) -> None:
    # Every real date would then be refused at fire time; check must say so first.
    text = catalogue.path("road_closure").read_text(encoding="utf-8")
    catalogue.path("road_closure").write_text(
        text.replace('name = "ends"\ntype = "datetime"\nformat = "datetime"\nmax_length = 44',
                     'name = "ends"\ntype = "datetime"\nformat = "datetime"\nmax_length = 25'),
        encoding="utf-8",
    )
    problems = problems_of(catalogue, "road_closure")
    assert any(p.startswith("variable 'ends': a valid datetime displays as") and "over max_length 25" in p
               for p in problems), problems


def raise_detour_max_length(catalogue: Catalogue, new: int) -> Path:
    path = catalogue.path("road_closure")
    edit(path, "max_length = 40\nrequired = true\nexamples", f"max_length = {new}\nrequired = true\nexamples")
    return path


def test_a_worst_case_that_does_not_fit_names_the_channels(catalogue: Catalogue, shipped_app: Loaded) -> None:
    raise_detour_max_length(catalogue, 400)
    problems = problems_of(catalogue, "road_closure", shipped_app)
    worst = [p for p in problems if p.startswith("worst case does not fit")]
    joined = "\n".join(worst)
    for channel in ("sms-residents", "sms-exercise", "x-authority"):
        assert f"channel {channel!r}" in joined
    assert "channel 'x-authority' (x, en):" in joined
    assert "channel 'sms-residents' (sms, ar):" in joined
    assert "(UCS-2), limit 4" in joined
    assert "weighted chars" in joined
    # Telegram's 4096 units hold it: that channel is not blamed.
    assert "telegram" not in joined
    # The edit also voided the approval, and that is reported too, without hiding the lengths.
    assert STALE in "\n".join(problems)


def test_approving_does_not_hide_a_worst_case_that_does_not_fit(catalogue: Catalogue, shipped_app: Loaded) -> None:
    path = raise_detour_max_length(catalogue, 400)
    approve_as_is(path, "Officer", WHEN)
    problems = check_catalogue(catalogue, DUBAI, targets(shipped_app.config.channels), public_url=PUBLIC_URL)
    assert problems
    assert all(p.startswith(f"{path}: worst case does not fit") for p in problems), problems


def test_the_worst_case_is_only_checked_for_kinds_the_template_targets(catalogue: Catalogue) -> None:
    path = raise_detour_max_length(catalogue, 400)
    set_kinds(path, '["telegram", "webhook"]')
    approve_as_is(path, "Officer", WHEN)
    assert problems_of(catalogue, "road_closure") == []


def test_the_worst_case_counts_the_exercise_marker(catalogue: Catalogue) -> None:
    # Find the largest max_length whose plain worst case fits X; the exercise marker must then tip it over, and so
    # must the longest update or reminder marker ("Reminder no. 99999:").
    path = catalogue.path("road_closure")
    template = catalogue.get("road_closure")
    x_only = [t for t in DEFAULT_TARGETS if t.kind == "x"]

    others = worst_display(template, catalogue.gazetteer, DUBAI, XChannel.measure_piece)  # the slow part: every date
    detour = next(v for v in template.variables if v.name == "detour")

    def fits(n: int, *, exercise: bool) -> bool:
        only_detour = replace(template, variables=(replace(detour, max_length=n),))
        display = {**others, **worst_display(only_detour, catalogue.gazetteer, DUBAI, XChannel.measure_piece)}
        forms = with_verify_line(render_forms(template, display, exercise=exercise), PUBLIC_URL, worst_code())
        return all(r.fits for r in render_kind("x", forms, ("ar", "en")))

    n = max(n for n in range(40, 200) if fits(n, exercise=False))
    assert not fits(n, exercise=True)
    raise_detour_max_length(catalogue, n)
    approve_as_is(path, "Officer", WHEN)
    problems = check_template(catalogue.get("road_closure"), catalogue.gazetteer, DUBAI, x_only, public_url=PUBLIC_URL)
    # Only the markers overflow: the exercise marker, and the longest update or reminder marker.
    assert any(", exercise)" in p for p in problems), problems
    assert any(", as a reminder or update)" in p and "exercise" not in p for p in problems), problems
    assert all(", exercise" in p or ", as a reminder or update)" in p for p in problems), problems


def test_nothing_is_truncated_a_max_length_value_renders_in_full(shipped: Catalogue, catalogue: Catalogue) -> None:
    # At the shipped max_length the full value is in every message, and it fits.
    template = shipped.get("road_closure")
    detour = {"ar": "A" + "ب" * 39, "en": "W" * 40}
    now = time.time()
    inputs = {**example_inputs(template, now, DUBAI), "detour": detour}
    values = resolve(template, shipped.gazetteer, inputs, DUBAI, now=now)
    forms = render_forms(template, values.display, exercise=False)
    for kind in ("sms", "x", "telegram", "webhook"):
        for rendered in render_kind(kind, forms, ("ar", "en")):
            assert rendered.fits, (kind, rendered.language, rendered.length)
            if "ar" in rendered.language:
                assert f"{RLI}{detour['ar']}{PDI}" in rendered.text
            if "en" in rendered.language:
                assert detour["en"] in rendered.text

    # Past the limit the message is still whole: it is refused, never cut.
    raise_detour_max_length(catalogue, 400)
    big = catalogue.get("road_closure")
    long_detour = {"ar": "ب" * 400, "en": "Take the coast road " * 20}
    assert len(long_detour["en"]) == 400
    values = resolve(big, catalogue.gazetteer, {**example_inputs(big, now, DUBAI), "detour": long_detour}, DUBAI,
                     now=now)
    forms = render_forms(big, values.display, exercise=False)
    ar_sms, en_sms = render_kind("sms", forms, ("ar", "en"))
    assert not ar_sms.fits
    assert long_detour["ar"] in ar_sms.text and long_detour["en"].strip() in en_sms.text
    assert ar_sms.text == forms["ar"]["short"] and en_sms.text == inert_isolates_dropped(forms["en"]["short"])
    assert ar_sms.segments == lengths.sms_count(ar_sms.text).segments > ar_sms.limit
    [x_en] = render_kind("x", forms, ("en",))
    assert not x_en.fits and x_en.length == lengths.x_weighted_length(forms["en"]["short"])
    assert x_en.text.endswith(long_detour["en"].strip() + PDI + ".")

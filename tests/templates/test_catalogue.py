"""The template catalogue: loading, approval bound to content, clear structural errors."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from broadcaster.channels.registry import KINDS, targets
from broadcaster.errors import TemplateError
from broadcaster.templates.catalogue import Catalogue, content_hash, read_toml
from broadcaster.templates.check import check_catalogue
from tests.support import Loaded
from tests.templates.support import DEFAULT_TARGETS, DUBAI, PUBLIC_URL, approve_as_is, edit, set_kinds

REQUIRED = {"road_closure", "flood_warning", "earthquake", "all_clear", "cancel"}
WHEN = datetime(2026, 11, 22, 9, 30, tzinfo=DUBAI)
EN_SHORT = 'short = "{road} will be closed from {starts}'


def test_shipped_catalogue_holds_the_required_templates_all_approved(shipped: Catalogue) -> None:
    assert set(shipped.ids()) >= REQUIRED
    assert "gazetteer" not in shipped.ids()
    for template_id in shipped.ids():
        template = shipped.approved(template_id)
        assert template.id == template_id
        assert template.approval is not None and template.approval.sha256 == template.content_hash


def test_shipped_catalogue_passes_check_with_shipped_channels(shipped_app: Loaded) -> None:
    assert shipped_app.catalogue.ids()
    problems = check_catalogue(shipped_app.catalogue, shipped_app.config.timezone, targets(shipped_app.config.channels),
                               public_url=shipped_app.config.public_url)
    assert problems == []


def test_shipped_catalogue_passes_check_against_default_targets(shipped: Catalogue) -> None:
    assert check_catalogue(shipped, DUBAI, DEFAULT_TARGETS, public_url=PUBLIC_URL) == []


def test_editing_text_makes_the_approval_stale(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    before = catalogue.get("road_closure").content_hash
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')

    template = catalogue.get("road_closure")
    assert template.content_hash != before
    assert not template.approved

    problems = check_catalogue(catalogue, DUBAI, DEFAULT_TARGETS, public_url=PUBLIC_URL)
    assert [p for p in problems if p.startswith(str(path)) and "stale" in p], problems
    # Only the edited template is affected.
    assert all(p.startswith(str(path)) for p in problems)

    with pytest.raises(TemplateError, match="stale") as caught:
        catalogue.approved("road_closure")
    assert caught.value.where == str(path)
    assert "templates approve road_closure" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('[cap]\ncategory = "Transport"', '[cap]\ncategory = "Geo"'),
        ("max_length = 40\nrequired = true\nexamples", "max_length = 41\nrequired = true\nexamples"),
        ('flooding = { ar = "تجمعات مياه الأمطار"', 'flooding = { ar = "تجمعات الأمطار"'),
    ],
    ids=["cap-field", "max-length", "arabic-enum-label"],
)
def test_any_content_change_voids_the_approval(catalogue: Catalogue, old: str, new: str) -> None:
    edit(catalogue.path("road_closure"), old, new)
    with pytest.raises(TemplateError, match="stale"):
        catalogue.approved("road_closure")


def test_comments_and_layout_do_not_void_the_approval(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    edit(path, "[cap]\n", "# Reviewed again by the traffic desk.\n\n[cap]\n")
    edit(path, 'responseType = "Avoid"', 'responseType   =   "Avoid"   # unchanged')
    assert catalogue.approved("road_closure").approved


def test_missing_approval_is_reported(catalogue: Catalogue) -> None:
    path = catalogue.path("cancel")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.split("[approval]")[0], encoding="utf-8")
    with pytest.raises(TemplateError, match="approval missing"):
        catalogue.approved("cancel")
    problems = check_catalogue(catalogue, DUBAI, DEFAULT_TARGETS, public_url=PUBLIC_URL)
    assert problems == [
        f"{path}: [approval]: missing; run `broadcaster templates approve ID` (as an approver) after review"]


def test_reapproving_fixes_a_stale_template_and_keeps_comments(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    edit(path, "[cap]\n", "# A comment the approver must keep.\n[cap]\n")
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')
    edited = path.read_text(encoding="utf-8")

    digest = approve_as_is(path, "  Duty Officer Mariam  ", WHEN)

    template = catalogue.approved("road_closure")
    assert digest == template.content_hash
    assert template.approval is not None
    assert template.approval.by == "Duty Officer Mariam"
    assert template.approval.at == "2026-11-22T09:30:00+04:00"
    after = path.read_text(encoding="utf-8")
    # Everything before [approval] is kept byte for byte, comments included.
    assert after.split("\n[approval]")[0] == edited.split("\n[approval]")[0]
    assert "# Road closure: announced by municipalities" in after
    assert "# A comment the approver must keep." in after
    assert after.count("[approval]") == 1
    assert check_catalogue(catalogue, DUBAI, DEFAULT_TARGETS, public_url=PUBLIC_URL) == []


def test_approving_an_unapproved_file_appends_the_table(catalogue: Catalogue) -> None:
    path = catalogue.path("cancel")
    path.write_text(path.read_text(encoding="utf-8").split("[approval]")[0], encoding="utf-8")
    approve_as_is(path, "Officer", WHEN)
    assert catalogue.approved("cancel").approval is not None
    assert path.read_text(encoding="utf-8").count("[approval]") == 1


def test_approve_replaces_an_approval_header_that_carries_a_comment(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    edit(path, "[approval]\n", "[approval]  # signed off by the duty desk\n")
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')
    approve_as_is(path, "Officer", WHEN)
    assert catalogue.approved("road_closure").approval is not None
    assert path.read_text(encoding="utf-8").count("[approval]") == 1


def test_approve_refuses_a_table_after_approval_and_restores_the_file(catalogue: Catalogue) -> None:
    # [[variables]] after [approval] would silently drop out of the approved content.
    path = catalogue.path("road_closure")
    text = path.read_text(encoding="utf-8")
    block = text[text.index('[[variables]]\nname = "detour"'):text.index("[text.ar]")]
    moved = text.replace(block, "") + "\n" + block
    path.write_text(moved, encoding="utf-8")
    with pytest.raises(TemplateError, match=r"\[approval\] must be the last table"):
        approve_as_is(path, "Officer", WHEN)
    assert path.read_text(encoding="utf-8") == moved


def test_approve_restores_the_file_when_the_rewrite_does_not_parse(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    text = path.read_text(encoding="utf-8")
    # [text.en] after [approval]: cutting at [approval] would leave a template without English.
    en_start, approval_start = text.index("[text.en]"), text.index("[approval]")
    broken = text[:en_start] + text[approval_start:] + "\n" + text[en_start:approval_start]
    path.write_text(broken, encoding="utf-8")
    assert catalogue.get("road_closure").approved  # same content, still approved; re-approving must not break it
    with pytest.raises(TemplateError):
        approve_as_is(path, "Officer", WHEN)
    assert path.read_text(encoding="utf-8") == broken


def test_approve_needs_a_name(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    before = path.read_text(encoding="utf-8")
    with pytest.raises(TemplateError, match="approver"):
        approve_as_is(path, "   ", WHEN)
    assert path.read_text(encoding="utf-8") == before


def test_content_hash_ignores_the_approval_table(catalogue: Catalogue) -> None:
    raw = read_toml(catalogue.path("earthquake"))
    changed = {**raw, "approval": {"by": "someone else", "at": "x", "sha256": "0" * 64}}
    assert content_hash(changed) == content_hash(raw)
    assert content_hash({**raw, "version": raw["version"] + 1}) != content_hash(raw)


def test_toml_syntax_error_names_the_file_and_line(catalogue: Catalogue) -> None:
    path = catalogue.path("flood_warning")
    lines = path.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.startswith("severity ="))
    lines[number - 1] = 'severity = "Severe'  # unterminated string
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(TemplateError) as caught:
        catalogue.get("flood_warning")
    assert caught.value.where == f"{path}:{number}"
    assert "TOML syntax error" in str(caught.value)

    problems = check_catalogue(catalogue, DUBAI, DEFAULT_TARGETS, public_url=PUBLIC_URL)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{number}: ")


def test_an_unknown_template_id_lists_the_known_ones(shipped: Catalogue) -> None:
    with pytest.raises(TemplateError) as caught:
        shipped.get("road_closed")
    message = str(caught.value)
    assert "'road_closed'" in message
    for known in shipped.ids():
        assert known in message
    with pytest.raises(TemplateError, match=r"known: .*road_closure"):
        shipped.approved("../channels")


def test_the_gazetteer_is_not_a_template(shipped: Catalogue) -> None:
    with pytest.raises(TemplateError, match="no template 'gazetteer'"):
        shipped.get("gazetteer")


def test_an_invalid_cap_value_names_the_field_and_the_allowed_values(catalogue: Catalogue) -> None:
    path = catalogue.path("earthquake")
    edit(path, 'urgency = "Immediate"', 'urgency = "Soon"')
    problems = check_catalogue(catalogue, DUBAI, DEFAULT_TARGETS, public_url=PUBLIC_URL)
    assert len(problems) == 1
    assert problems[0].startswith(str(path))
    assert re.search(r"\[cap\] urgency: 'Soon' is not a CAP 1\.2 value \(Immediate, Expected", problems[0])


def test_a_missing_cap_event_is_reported(catalogue: Catalogue) -> None:
    path = catalogue.path("earthquake")
    edit(path, 'event = { ar = "زلزال", en = "Earthquake" }', 'event = { ar = "زلزال" }')
    with pytest.raises(TemplateError, match=r"\[cap\] event: needs \{ar = \.\.\., en = \.\.\.\}"):
        catalogue.get("earthquake")


def test_an_unknown_top_level_key_is_rejected(catalogue: Catalogue) -> None:
    path = catalogue.path("all_clear")
    edit(path, "version = 1\n", "version = 1\nexpires_hour = 4\n")
    with pytest.raises(TemplateError, match=r"unknown key.*expires_hour") as caught:
        catalogue.get("all_clear")
    assert caught.value.where == str(path)


def test_a_missing_text_form_is_rejected(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    text = path.read_text(encoding="utf-8")
    en = text.index("[text.en]")
    head, tail = text[:en], text[en:]
    tail = re.sub(r'(?m)^headline = ".*"\n', "", tail, count=1)
    path.write_text(head + tail, encoding="utf-8")
    with pytest.raises(TemplateError, match=r"\[text\.en\] headline: missing or empty"):
        catalogue.get("road_closure")


def test_a_missing_templates_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="templates folder not found"):
        Catalogue(tmp_path / "nowhere", KINDS)


def test_a_template_that_is_not_utf8_names_the_line(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    path.write_bytes(path.read_bytes().replace("شارع".encode(), "Caf\u00e9".encode("latin-1"), 1))
    with pytest.raises(TemplateError, match=r"road_closure\.toml: line \d+, column \d+: byte 0xE9 is not UTF-8"):
        read_toml(path)


@pytest.mark.parametrize("bounds", ["min = nan", "max = inf", "min = -inf", "max = nan"])
def test_a_number_variable_needs_finite_bounds(catalogue: Catalogue, bounds: str) -> None:
    """TOML reads nan and inf: a nan bound refused every magnitude, an infinite one took any."""
    edit(catalogue.path("earthquake"), "min = 0" if bounds.startswith("min") else "max = 10", bounds)
    with pytest.raises(TemplateError, match=r"variable 'magnitude': a number needs finite min <= max"):
        catalogue.get("earthquake")


def test_a_template_may_only_target_a_kind_the_registry_has(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    set_kinds(path, '["x", "fax"]')
    with pytest.raises(TemplateError, match=r"key 'kinds': unknown channel kind 'fax' \(kinds: x, telegram, sms"):
        catalogue.get("road_closure")
    # A catalogue told of a further kind (a new module and its registry line) accepts it.
    assert Catalogue(catalogue.folder, [*KINDS, "fax"]).get("road_closure").kinds == ("x", "fax")


def test_cap_instruction_and_expires_from_are_read_and_checked(catalogue: Catalogue) -> None:
    flood = catalogue.get("flood_warning")
    assert flood.expires_from == "until"
    assert flood.instruction is not None and set(flood.instruction) == {"ar", "en"}
    assert catalogue.get("earthquake").expires_from is None  # no end time: expires_hours
    path = catalogue.path("flood_warning")
    edit(path, 'expires_from = "until"', 'expires_from = "level"')
    with pytest.raises(TemplateError, match=r"\[cap\] expires_from: 'level' is not a datetime variable"):
        catalogue.get("flood_warning")
    edit(path, 'expires_from = "level"', 'expires_from = "until"\nheadline_hint = "x"')
    with pytest.raises(TemplateError, match=r"\[cap\]: unknown key\(s\) headline_hint"):
        catalogue.get("flood_warning")


def _drop_form(path: Path, language: str, form: str) -> None:
    text = path.read_text(encoding="utf-8")
    at = text.index(f"[text.{language}]")
    end = text.find("[text.", at + 1)
    end = len(text) if end < 0 else end
    section = re.sub(rf'(?m)^{form} = ".*"\n', "", text[at:end], count=1)
    path.write_text(text[:at] + section + text[end:], encoding="utf-8")


def test_a_template_sent_by_cell_broadcast_must_write_that_form(catalogue: Catalogue) -> None:
    path = catalogue.path("earthquake")
    assert "cell_broadcast" in catalogue.get("earthquake").text["ar"]
    _drop_form(path, "en", "cell_broadcast")
    with pytest.raises(TemplateError, match=r"\[text\.en\] cell_broadcast: missing; key 'kinds' names"):
        catalogue.get("earthquake")


def test_the_cell_broadcast_form_is_written_in_both_languages_or_neither(catalogue: Catalogue) -> None:
    path = catalogue.path("dust_storm")  # has the form, is not sent by cell broadcast (Moderate: no identifier)
    assert "cell_broadcast" not in catalogue.get("dust_storm").kinds
    _drop_form(path, "ar", "cell_broadcast")
    with pytest.raises(TemplateError, match=r"\[text\.en\] cell_broadcast: given in one language only"):
        catalogue.get("dust_storm")
    _drop_form(path, "en", "cell_broadcast")
    assert "cell_broadcast" not in catalogue.get("dust_storm").text["en"]


def test_an_unknown_text_form_is_rejected(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), "[text.en]\n", '[text.en]\nsms = "text"\n')
    with pytest.raises(TemplateError, match=r"\[text\.en\]: unknown form\(s\) sms"):
        catalogue.get("road_closure")


def test_a_link_in_the_cell_broadcast_form_is_a_problem(catalogue: Catalogue) -> None:
    path = catalogue.path("flood_warning")
    edit(path, "do not cross flooded roads. {level}", "do not cross flooded roads, see ncema.gov.ae. {level}")
    problems = check_catalogue(catalogue, DUBAI, DEFAULT_TARGETS)
    assert any("[text.en] cell_broadcast: 'ncema.gov.ae' looks like a link" in p for p in problems), problems

"""Alert cards as drawn: 1080×1080 PNGs, Arabic shaped and right to left, marked in an exercise, nothing cut."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.cards.content import CardContent, card_contents, place_list
from broadcaster.cards.render import MARGIN, MARKER_AMBER, SIZE, Engine, Fonts, render_card, render_cards, tokens
from broadcaster.errors import TemplateError
from broadcaster.states import Mode
from broadcaster.templates.render import FSI, LRI, PDI, RLI, render_forms
from broadcaster.templates.variables import example_inputs, resolve
from tests.cards.shaping import assert_shaped_right_to_left, pixels, probe_content, read_line
from tests.support import Loaded

SENT_AT = 1_795_456_800.0  # 2026-11-23T18:00:00+04:00: the examples are relative to it


def test_arabic_on_a_card_is_shaped_and_right_to_left() -> None:
    assert_shaped_right_to_left(render_card(probe_content()))


def test_a_card_laid_out_without_shaping_fails_the_check() -> None:
    """The check can tell: Pillow's basic layout draws isolated letters, left to right."""
    card = render_card(probe_content(), fonts=Fonts(Engine.BASIC))
    reading = read_line(card)
    assert reading.ink_runs > 2 and reading.tallest_at < 0.2
    with pytest.raises(AssertionError):
        assert_shaped_right_to_left(card)


@pytest.mark.parametrize("language", ["ar", "en"])
@pytest.mark.parametrize("exercise", [False, True])
def test_every_card_is_a_1080_square_png(language: str, exercise: bool) -> None:
    card = render_card(probe_content(language=language, headline="Road closed", exercise=exercise))
    image = pixels(card)
    assert (image.format, image.size, image.mode) == ("PNG", (SIZE, SIZE), "RGB")
    assert card.png.startswith(b"\x89PNG\r\n\x1a\n")


def _amber(image: object, points: list[tuple[int, int]]) -> int:
    rgb = pixels_of(image)
    near = 0
    for x, y in points:
        r, g, b = rgb[x, y][:3]
        near += abs(r - MARKER_AMBER[0]) < 40 and abs(g - MARKER_AMBER[1]) < 60 and b < 150
    return near


def pixels_of(image: object) -> object:
    return image.convert("RGB").load()


def test_an_exercise_card_is_marked_across_and_framed_a_live_one_is_not() -> None:
    live = pixels(render_card(probe_content()))
    drill = pixels(render_card(probe_content(exercise=True)))
    # The band runs corner to corner (bottom left to top right); the frame runs round the edge.
    diagonal = [(x, SIZE - x) for x in range(60, SIZE - 60, 40)]
    frame = [(x, 12) for x in range(6, SIZE, 48)] + [(12, y) for y in range(6, SIZE, 48)]
    assert _amber(drill, diagonal) >= len(diagonal) * 0.6
    assert _amber(drill, frame) >= len(frame) * 0.3
    assert _amber(live, diagonal) == 0 and _amber(live, frame) == 0


@pytest.mark.parametrize("language", ["ar", "en"])
def test_a_card_shows_each_element_inside_the_card_without_overlap(language: str, shipped_app: Loaded) -> None:
    contents = _contents(shipped_app, "road_closure", Mode.LIVE)
    card = render_card(contents[language])
    expected = {"kicker", "headline", "fact0", "fact0.label", "fact1", "fact1.label", "fact2", "fact2.label",
                "authority", "alert_id"}
    assert set(card.boxes) == expected
    for name, (left, top, right, bottom) in card.boxes.items():
        assert MARGIN - 2 <= left < right <= SIZE - MARGIN + 2, name
        assert 0 <= top < bottom <= SIZE, name
    placed = sorted(card.boxes.items(), key=lambda item: item[1][1])
    for (a, box_a), (b, box_b) in itertools.combinations(placed, 2):
        overlaps = box_a[0] < box_b[2] and box_b[0] < box_a[2] and box_a[1] < box_b[3] and box_b[1] < box_a[3]
        assert not overlaps, f"{a} overlaps {b}"
    # The Arabic card reads from the right: its labels and headline end at the right margin.
    edge = card.boxes["headline"][2] if language == "ar" else card.boxes["headline"][0]
    assert abs(edge - (SIZE - MARGIN if language == "ar" else MARGIN)) <= 8


def _contents(app: Loaded, template_id: str, mode: Mode) -> dict[str, CardContent]:
    template = app.catalogue.get(template_id)
    tz = app.config.timezone
    values = resolve(template, app.catalogue.gazetteer, example_inputs(template, SENT_AT, tz), tz, now=SENT_AT)
    forms = render_forms(template, values.display, exercise=mode == Mode.EXERCISE)
    return card_contents(app.config, template, app.catalogue.gazetteer, alert_id="20261123-180000-ab12cd",
                         mode=mode, msg_type="Alert", sent_at=SENT_AT, expires_at=SENT_AT + 86400,
                         areas=values.areas, forms=forms)


def test_every_shipped_template_renders_in_both_languages(shipped_app: Loaded, tmp_path: Path) -> None:
    """One card per shipped template and language, kept under this test's tmp dir to look at."""
    folder = tmp_path / "cards"
    folder.mkdir()
    for template_id in shipped_app.catalogue.ids():
        for mode in (Mode.LIVE, Mode.EXERCISE):
            cards = render_cards(_contents(shipped_app, template_id, mode))
            assert list(cards) == ["ar", "en"]
            for lang, card in cards.items():
                assert pixels(card).size == (SIZE, SIZE)
                assert {"headline", "authority", "alert_id"} <= set(card.boxes)
                (folder / f"{template_id}-{mode}-{lang}.png").write_bytes(card.png)
    assert len(list(folder.glob("*.png"))) == 4 * len(shipped_app.catalogue.ids())


def test_a_headline_that_cannot_fit_is_refused_never_cut() -> None:
    with pytest.raises(TemplateError, match="headline does not fit"):
        render_card(probe_content(headline=" ".join(["إغلاق شارع الشيخ زايد"] * 20)))


def test_the_card_says_the_alert_in_both_languages(shipped_app: Loaded) -> None:
    contents = _contents(shipped_app, "road_closure", Mode.EXERCISE)
    ar, en = contents["ar"], contents["en"]
    assert ar.kicker.startswith("تنبيه · ") and en.kicker == "ALERT · Road closure"
    # The exercise marker is drawn across the card, not repeated in its headline.
    assert not en.headline.startswith("[EXERCISE]") and en.exercise
    assert en.marker == "[EXERCISE]  [تمرين]" and ar.marker == "[تمرين]  [EXERCISE]"
    labels = [label for label, _ in ar.facts]
    assert labels == ["المنطقة", "صدر", "ساري حتى"]
    issued = dict(ar.facts)["صدر"]
    assert not any("٠" <= ch <= "٩" for ch in issued), "Western digits on Arabic cards"
    assert en.authority == "Emergency and Crisis Authority"  # [broadcaster] authority in the sample config


def test_a_configured_authority_names_the_issuer_else_the_sender(shipped_app: Loaded) -> None:
    config = replace(shipped_app.config, authority={"ar": "شرطة دبي", "en": "Dubai Police"})
    contents = _contents(Loaded(config, shipped_app.catalogue), "road_closure", Mode.LIVE)
    assert contents["ar"].authority == "شرطة دبي" and contents["en"].authority == "Dubai Police"
    unnamed = _contents(Loaded(replace(config, authority=None), shipped_app.catalogue), "road_closure", Mode.LIVE)
    assert unnamed["ar"].authority == unnamed["en"].authority == "alerts.example.gov"


WORDS = st.text(alphabet="ابت Ab1", min_size=1, max_size=6).filter(lambda w: w.strip() == w and " " not in w)


ISOLATED = st.tuples(st.sampled_from([RLI, LRI, FSI]), st.lists(WORDS, min_size=1, max_size=3))


@given(st.lists(st.one_of(WORDS, ISOLATED.map(lambda iw: iw[0] + " ".join(iw[1]) + PDI)), max_size=8))
def test_wrapping_keeps_every_word_and_never_splits_an_isolate(parts: list[str]) -> None:
    # Values are isolated RLI … PDI in Arabic and LRI … PDI in English; FSI is still understood.
    text = " ".join(parts)
    found = tokens(text)
    assert " ".join(found) == " ".join(text.split())
    for token in found:
        assert sum(token.count(c) for c in (RLI, LRI, FSI)) == token.count(PDI)


def test_without_libraqm_no_card_is_drawn_rather_than_unshaped_arabic(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import features

    real = features.check
    monkeypatch.setattr(features, "check", lambda name: False if name == "raqm" else real(name))
    with pytest.raises(RuntimeError, match="apt-get install libfribidi0"):
        render_card(probe_content())


@pytest.mark.parametrize("language", ["ar", "en"])
def test_an_alert_over_every_area_names_the_first_and_counts_the_rest(language: str, shipped_app: Loaded) -> None:
    """An alert is never refused because its card cannot list every area: the card names what fits."""
    gazetteer = shipped_app.catalogue.gazetteer
    codes = sorted(gazetteer.area_codes())
    contents = _contents(shipped_app, "flood_warning", Mode.LIVE)
    names = tuple(gazetteer.get(code).name(language) for code in codes)  # type: ignore[union-attr]
    content = replace(contents[language], places=names)
    card = render_card(content)
    assert "fact0" in card.boxes
    assert place_list(language, names, 2).endswith("and 12 more" if language == "en" else "و12 غيرها")
    assert place_list(language, names, len(names)) == ("، " if language == "ar" else ", ").join(names)

"""``templates check`` proves the worst-case headline fits the card of every channel that carries one."""

from __future__ import annotations

from pathlib import Path

from broadcaster.channels.registry import targets
from tests.support import make_config


def forms(headline: str) -> dict[str, dict[str, str]]:
    return {lang: {"headline": headline, "short": "s", "long": "l"} for lang in ("ar", "en")}


def test_a_card_carrying_channel_measures_its_cards_headline(tmp_path: Path) -> None:
    config = make_config(tmp_path, [
        {"id": "ig", "kind": "instagram", "ig_user_id": "17841400000000001", "token_env": "T"},
        {"id": "fb", "kind": "facebook", "page_id": "1", "token_env": "T", "card": True},
        {"id": "fb-plain", "kind": "facebook", "page_id": "2", "token_env": "T"},
    ], public_url="https://alerts.example.gov")
    instagram, facebook, plain = targets(config.channels)

    short = [r for r in instagram.render(forms("إغلاق شارع الشيخ زايد")) if r.unit == "card headline lines"]
    assert [(r.language, r.fits) for r in short] == [("ar card", True), ("en card", True)]
    assert short[0].length == 1 and short[0].limit >= 4

    endless = " ".join(["إغلاق شارع الشيخ زايد بسبب أعمال صيانة"] * 12)
    [too_long] = [r for r in facebook.render(forms(endless)) if r.unit == "card headline lines"]
    assert too_long.language == "ar card" and not too_long.fits  # a combined post: its first language's card
    assert [r for r in plain.render(forms(endless)) if r.unit == "card headline lines"] == []
    # An exercise marker on the headline is drawn across the card, not in its headline.
    [marked] = [r for r in facebook.render(forms("[تمرين] عنوان")) if r.unit == "card headline lines"]
    assert marked.text == "عنوان"

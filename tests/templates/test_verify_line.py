"""The verification line: built by the broadcaster, at the end of the short and long forms, counted everywhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broadcaster.cli import main
from broadcaster.templates.catalogue import Catalogue
from broadcaster.templates.check import check_template, worst_case_problems
from broadcaster.templates.render import LRI, PDI
from broadcaster.templates.verify_line import (
    ALPHABET,
    NO_PUBLIC_URL,
    public_url_problem,
    read_code,
    short_code,
    verify_lines,
    with_verify_line,
    worst_code,
)
from broadcaster.text.lengths import x_weighted_length
from tests.support import write_config
from tests.templates.support import DEFAULT_TARGETS, DUBAI, PUBLIC_URL, SHIPPED_TEMPLATES, render_kind

SMS_UCS2_4 = 4 * 67  # four concatenated UCS-2 parts
SMS_GSM_4 = 4 * 153  # four concatenated GSM-7 parts


def forms(ar: str, en: str) -> dict[str, dict[str, str]]:
    return {"ar": {"headline": "عنوان", "short": ar, "long": ar}, "en": {"headline": "Headline", "short": en,
                                                                      "long": en}}


def test_the_code_is_eight_unambiguous_characters_stable_for_an_alert() -> None:
    codes = {short_code(f"20261130-1200{i:02d}-abcdef") for i in range(60)}
    assert len(codes) == 60
    for code in codes:
        assert len(code) == 8 and set(code) <= set(ALPHABET) and not set(code) & set("ILOU")
    assert short_code("20261130-120000-abcdef") == short_code("20261130-120000-abcdef")
    code = short_code("20261130-120000-abcdef")
    assert read_code(code.lower()) == read_code(f"{code[:4]}-{code[4:]}") == read_code(f"{code[:4]} {code[4:]}") == code
    assert read_code("O1IL0000") == "01110000"  # O reads as 0; I and L as 1
    for bad in ("", "ABC", "ABCDEFGHJ", "ABCDEFG!", "ABCDEFGU"):
        assert read_code(bad) is None, bad


def test_the_line_ends_the_short_and_long_forms_never_the_headline() -> None:
    marked = with_verify_line(forms("نص", "Text"), PUBLIC_URL, "ABCD2345")
    url = f"{PUBLIC_URL}/v/ABCD2345"
    assert marked["ar"]["short"] == f"نص\nتحقق: {LRI}{url}{PDI}"
    assert marked["ar"]["long"] == f"نص\n\nتحقق: {LRI}{url}{PDI}"
    assert marked["en"]["short"] == f"Text\nVerify: {LRI}{url}{PDI}"
    assert marked["ar"]["headline"] == "عنوان" and marked["en"]["headline"] == "Headline"


def test_the_url_reads_left_to_right_inside_the_arabic_text() -> None:
    bidi = pytest.importorskip("bidi")
    line = verify_lines(PUBLIC_URL, "ABCD2345")["ar"]
    shown = bidi.get_display(line)
    assert f"{PUBLIC_URL}/v/ABCD2345" in shown  # the link whole, in its own order, not scrambled around the colon


def test_the_line_is_counted_in_sms_segments_at_the_boundary() -> None:
    line_ar = len("\n" + verify_lines(PUBLIC_URL, worst_code())["ar"])
    line_en = len("\n" + verify_lines(PUBLIC_URL, worst_code())["en"]) - 2  # the English SMS drops the isolates
    for extra, segments in ((0, 4), (1, 5)):
        ar = "ب" * (SMS_UCS2_4 - line_ar + extra)
        en = "W" * (SMS_GSM_4 - line_en + extra)
        (r_ar,) = render_kind("sms", with_verify_line(forms(ar, en), PUBLIC_URL, worst_code()), ("ar",))
        (r_en,) = render_kind("sms", with_verify_line(forms(ar, en), PUBLIC_URL, worst_code()), ("en",))
        assert (r_ar.segments, r_ar.encoding) == (segments, "UCS-2")
        assert (r_en.segments, r_en.encoding) == (segments, "GSM-7")  # English stays GSM-7
        # Without the line the same texts take fewer segments: the line is what is counted.
        (bare,) = render_kind("sms", forms(ar, en), ("ar",))
        assert bare.segments == 4


def test_on_x_the_link_counts_23_whatever_the_public_url() -> None:
    bare = forms("نص", "Text")
    short = with_verify_line(bare, "https://a.gov", "ABCD2345")
    long = with_verify_line(bare, "https://alerts.authority.example.gov/public/alerts", "ABCD2345")
    for lang in ("ar", "en"):
        added = x_weighted_length(short[lang]["short"]) - x_weighted_length(bare[lang]["short"])
        assert added == x_weighted_length(long[lang]["short"]) - x_weighted_length(bare[lang]["short"])
        label = {"ar": "تحقق: ", "en": "Verify: "}[lang]
        assert added == x_weighted_length("\n" + label + LRI + PDI) + 23


def test_templates_check_proves_the_worst_case_with_the_line(shipped: Catalogue) -> None:
    template = shipped.get("road_closure")
    assert template.verify_line
    detour = next(v for v in template.variables if v.name == "detour")

    def problems(n: int, *, line: bool) -> list[str]:
        candidate = dataclasses.replace(template, verify_line=line, variables=tuple(
            dataclasses.replace(v, max_length=n) if v is detour else v for v in template.variables))
        sms_only = [t for t in DEFAULT_TARGETS if t.kind == "sms"]
        return worst_case_problems(candidate, shipped.gazetteer, DUBAI, sms_only, public_url=PUBLIC_URL)

    assert problems(detour.max_length, line=True) == []
    # The longest detour that fits without the line, and does not with it.
    n = max(n for n in range(detour.max_length, 120) if not problems(n, line=False))
    assert problems(n, line=True) and all("sms" in p for p in problems(n, line=True))


def test_without_public_url_templates_check_refuses_a_template_with_the_line(shipped: Catalogue) -> None:
    template = shipped.get("earthquake")
    found = check_template(template, shipped.gazetteer, DUBAI, DEFAULT_TARGETS, public_url=None)
    assert NO_PUBLIC_URL in found
    assert NO_PUBLIC_URL not in check_template(dataclasses.replace(template, verify_line=False), shipped.gazetteer,
                                               DUBAI, DEFAULT_TARGETS, public_url=None)
    assert public_url_problem("http://alerts.example.gov") is not None  # never a plain-http link to the public
    assert public_url_problem("http://127.0.0.1:8080") is None  # a test or a demo on this machine
    assert public_url_problem("https://alerts.example.gov/?a=1") is not None
    assert public_url_problem(PUBLIC_URL) is None and public_url_problem(PUBLIC_URL + "/") is None


def no_public_url(tmp_path: Path) -> list[str]:
    config = write_config(tmp_path, [{"id": "partners", "kind": "webhook", "url": "https://partner.example/hook",
                                      "secret_env": "PARTNER_HOOK_SECRET"}],
                          public_url=None, templates=str(SHIPPED_TEMPLATES))
    return ["--config", str(config), "--db", str(tmp_path / "t.db")]


def test_without_public_url_channels_check_and_templates_check_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = no_public_url(tmp_path)
    assert main([*base, "templates", "check"]) == 2
    assert "verify_line = true needs [broadcaster] public_url" in capsys.readouterr().err
    assert main([*base, "channels", "check", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "verify_line = true needs [broadcaster] public_url" in err and "road_closure" in err


def test_without_public_url_a_fire_is_refused_and_nothing_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = no_public_url(tmp_path)
    assert main([*base, "fire", "road_closure", "--use-examples", "--dry-run", "--json"]) == 2
    captured = capsys.readouterr()
    assert "verify_line = true needs [broadcaster] public_url" in captured.err + captured.out
    assert "alert_id" not in captured.out

"""Arabic on a terminal is shaped and in display order; piped or as JSON it is the logical text, as sent."""

from __future__ import annotations

import io
import re
import sys
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from broadcaster.cli import main
from broadcaster.cli.display import shown, visual

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "channels.toml"
HEADLINE = "إغلاق شارع الشيخ زايد بسبب أعمال صيانة"  # road_closure's Arabic headline with its examples
# ... as sent: each value in a right-to-left isolate (RLI ... PDI)
SENT_HEADLINE = "إغلاق \u2067شارع الشيخ زايد\u2069 بسبب \u2067أعمال صيانة\u2069"
SMS_START = "إغلاق شارع الشيخ زايد من"  # road_closure's Arabic SMS (its short form) starts so
SENT_SMS_START = "إغلاق \u2067شارع الشيخ زايد\u2069 من \u2067"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PRESENTATION_FORMS = re.compile("[\ufb50-\ufdff\ufe70-\ufeff]")
ARABIC_LETTERS = [chr(c) for c in range(0x0621, 0x063B)] + [chr(c) for c in range(0x0641, 0x064B)]


# --- the transform ----------------------------------------------------------------------------


def test_a_real_arabic_line_in_display_order() -> None:
    # Logical "إغلاق ⁦E311⁩" (a road number isolated left-to-right inside Arabic). python-bidi puts the
    # right-to-left paragraph in display order: the road number at the left end, the word reversed;
    # arabic-reshaper gives each letter its joined form: ق isolated, lam-alef final ligature, غ initial,
    # إ isolated. The isolates have done their work and are dropped.
    assert visual("إغلاق \u2066E311\u2069") == "E311 \ufed5\ufefc\ufecf\ufe87"


def test_a_mixed_line_keeps_its_english_in_place() -> None:
    # The first strong letter is Latin: a left-to-right paragraph, only the Arabic run reversed.
    assert visual("road_closure: إغلاق طريق / Road closure") == (
        "road_closure: \ufed6\ufef3\ufeae\ufec3 \ufed5\ufefc\ufecf\ufe87 / Road closure"
    )


def test_a_haraka_follows_its_letter() -> None:
    # مساءً: the fathatan sits on the hamza; a terminal draws a mark on the cell before it.
    assert visual("مساءً") == "\ufe80\u064b\ufe8e\ufeb4\ufee3"


def test_text_without_right_to_left_letters_is_unchanged() -> None:
    assert visual("Road closed \u2066E311\u2069\nline 2") == "Road closed \u2066E311\u2069\nline 2"


@settings(deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(ARABIC_LETTERS), min_size=1, max_size=12), min_size=1,
                max_size=8).map(" ".join))
def test_display_order_is_the_logical_letters_reversed(line: str) -> None:
    # Read right to left and unshaped (NFKC maps presentation forms back), the display is the line itself.
    shaped = visual(line)
    assert not re.search("[\u0621-\u064a]", shaped)  # every letter in a presentation form
    assert unicodedata.normalize("NFKC", shaped[::-1]) == unicodedata.normalize("NFKC", line)


def test_a_long_arabic_paragraph_is_wrapped_before_it_is_reordered() -> None:
    # A terminal wrapping a reordered line would show its last words first; wrapped on the logical
    # text, the first row holds the first words, right-aligned, and every row fits.
    paragraph = "تعلن الجهات المختصة عن إغلاق شارع الشيخ زايد بسبب أعمال صيانة"
    rows = visual(paragraph, width=30).split("\n")
    assert len(rows) == 3
    assert all(cell_len(row) == 30 for row in rows)  # padded on the left: aligned right
    assert rows[0].endswith(visual("تعلن"))  # the first word, at the right edge of the first row
    assert rows[-1].lstrip().startswith(visual("صيانة"))  # the last word, at the left end of the last row


def test_a_left_to_right_paragraph_is_wrapped_but_not_aligned_right() -> None:
    rows = visual("Road closure إغلاق طريق on Sheikh Zayed Road until Wednesday", width=25).split("\n")
    # Shaped, "لا" is one cell: the first row holds 25 cells.
    assert rows[0] == "Road closure \ufed6\ufef3\ufeae\ufec3 \ufed5\ufefc\ufecf\ufe87 on"
    assert all(cell_len(row) <= 25 for row in rows) and not rows[1].startswith(" ")


@settings(deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(ARABIC_LETTERS), min_size=1, max_size=12), min_size=1,
                max_size=30).map(" ".join), st.integers(min_value=15, max_value=80))
def test_wrapped_rows_read_top_to_bottom_in_logical_order(paragraph: str, width: int) -> None:
    rows = visual(paragraph, width=width).split("\n")
    assert all(cell_len(row) <= width for row in rows)
    logical_rows = [unicodedata.normalize("NFKC", row.lstrip(" ")[::-1]) for row in rows]
    assert " ".join(logical_rows) == unicodedata.normalize("NFKC", paragraph)


def test_shown_depends_on_the_console() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True)
    piped = Console(file=io.StringIO(), force_terminal=False)
    assert shown(HEADLINE, terminal) == visual(HEADLINE) != HEADLINE
    assert shown(HEADLINE, piped) == HEADLINE


# --- the commands -----------------------------------------------------------------------------


class Terminal(io.TextIOWrapper):
    """A stdout that says it is a terminal, as an officer's is."""

    def isatty(self) -> bool:
        return True


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> str:
    """The command's stdout when piped (pytest's capture is no terminal)."""
    capsys.readouterr()
    code = main(["--config", str(CONFIG), "--db", str(tmp_path / "t.db"), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def run_on_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> str:
    """The command's stdout when it is a terminal, without the terminal's colour codes."""
    screen = Terminal(io.BytesIO(), encoding="utf-8", line_buffering=True)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", screen)
        code = main(["--config", str(CONFIG), "--db", str(tmp_path / "t.db"), *args])
        screen.flush()
    assert code == 0
    buffer = screen.buffer
    assert isinstance(buffer, io.BytesIO)
    return ANSI.sub("", buffer.getvalue().decode("utf-8"))


def test_preview_on_a_terminal_is_shaped_and_in_display_order(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    out = run_on_terminal(monkeypatch, tmp_path, "preview", "road_closure", "--use-examples", "--channels", "kind:sms")
    assert visual(SMS_START) in out
    assert SMS_START not in out


def test_preview_piped_is_the_logical_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = run(capsys, tmp_path, "preview", "road_closure", "--use-examples", "--channels", "kind:sms")
    assert SENT_SMS_START in out
    assert not PRESENTATION_FORMS.search(out)


def test_preview_json_on_a_terminal_is_the_logical_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    doc = orjson.loads(run_on_terminal(monkeypatch, tmp_path, "preview", "road_closure", "--use-examples", "--json"))
    texts = "\n".join(message["text"] for message in doc["messages"])
    assert SENT_HEADLINE in texts
    assert not PRESENTATION_FORMS.search(texts)


def test_a_telegram_preview_shows_the_text_as_telegram_does(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    today = datetime.now(ZoneInfo("Asia/Dubai")).replace(hour=22, minute=0, second=0, microsecond=0)
    starts = today + timedelta(days=1)
    road = ["--var", "road=E311", "--var", "reason=accident", "--var", f"starts={starts.isoformat()}",
            "--var", f"ends={(starts + timedelta(hours=7)).isoformat()}"]
    out = run(capsys, tmp_path, "preview", "road_closure", *road, "--var", "detour.en=Al Khail Road & Emirates Road",
              "--var", "detour.ar=شارع الخيل & شارع الإمارات", "--channels", "kind:telegram")
    # Sent as "<b>...</b>" and "&amp;" in HTML parse mode; read as a bold headline and "&".
    assert "<b>" not in out and "</b>" not in out
    assert "&amp;" not in out
    assert "Al Khail Road & Emirates Road" in out
    assert "شارع الخيل & شارع الإمارات" in out


def test_a_dry_run_log_on_a_terminal_shows_its_arabic_banner_shaped(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    out = run_on_terminal(monkeypatch, tmp_path, "fire", "road_closure", "--use-examples", "--dry-run", "--log")
    assert visual("محاكاة — لا يُرسل شيء") in out
    assert "محاكاة — لا يُرسل شيء" not in out


def test_a_dry_run_log_piped_keeps_its_banner_logical(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = run(capsys, tmp_path, "fire", "road_closure", "--use-examples", "--dry-run", "--log")
    assert "محاكاة — لا يُرسل شيء" in out
    assert not PRESENTATION_FORMS.search(out)


def test_undecodable_bytes_in_an_arabic_line_do_not_break_the_display() -> None:
    # An argument with invalid UTF-8 reaches Python as lone surrogates (surrogateescape).
    assert visual("\udcff عربي") == "\ufef2\ufe91\ufeae\ufecb \ufffd"  # ي ب ر ع, then the lost byte

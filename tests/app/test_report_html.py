"""The HTML report: well-formed, right to left with Arabic first, self-contained, and every stored string escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from broadcaster.app.report import FailureGroup, Latency, Reach, Report, ThreadEntry
from broadcaster.app.report_html import report_html
from broadcaster.states import Mode, MsgType
from broadcaster.store.records import AlertRecord, MessageRecord

VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "polyline", "path", "circle", "line"}
HOSTILE = '</div><script>alert(1)</script><img src="https://evil.example/x" onerror="steal()">'
HOSTILE_CHANNEL = 'sms"><svg onload="steal()">'
LINK = "https://alerts.example.gov/cap/A1.xml"
SENT = datetime(2026, 11, 30, 11, 56, tzinfo=UTC).timestamp()  # 3:56 PM in Dubai


class Page(HTMLParser):
    """Tags in document order, their attributes, the text, and whether every element was closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.mismatched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.mismatched.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def hostile_report() -> Report:
    alert = AlertRecord(id="A1", template="road_closure", template_hash="h", mode=Mode.LIVE, msg_type=MsgType.ALERT,
                        references=None, sent_at=SENT, expires_at=SENT + 3600, areas=("dubai",),
                        channels=(HOSTILE_CHANNEL,), inputs={}, forms={})
    return Report(
        alert=alert, generated_at=SENT + 600,
        reach=[Reach(HOSTILE_CHANNEL, "ar", 11, 11, {"sent": 10, "failed": 1}, 9, 1)],
        latency=[Latency(HOSTILE_CHANNEL, 10, 0.5, 0.9, 1.2, 1.5)],
        failures=[FailureGroup("recipient_gone", 1, 1, (HOSTILE_CHANNEL,), HOSTILE)],
        retries={HOSTILE_CHANNEL: 3},
        thread=[ThreadEntry("A1", "Alert", "road_closure", SENT, SENT + 1, None, LINK),
                ThreadEntry("A2", "Cancel", "cancel", SENT + 300, SENT + 302.5, 302.5, None)],
        messages=[MessageRecord(f"{HOSTILE_CHANNEL}/ar", HOSTILE_CHANNEL, "ar", "تحذير " + HOSTILE),
                  MessageRecord(f"{HOSTILE_CHANNEL}/en", HOSTILE_CHANNEL, "en", "Warning " + HOSTILE)],
        timeline={HOSTILE_CHANNEL: [(0.5, 5), (1.5, 10)]}, links=(LINK,))


def parsed(document: str) -> Page:
    page = Page()
    page.feed(document)
    page.close()
    return page


def test_the_report_is_well_formed_arabic_first_and_right_to_left() -> None:
    document = report_html(hostile_report(), ZoneInfo("Asia/Dubai"))
    assert document.startswith("<!DOCTYPE html>")
    page = parsed(document)
    assert page.mismatched == [] and page.stack == []
    assert page.tags[0] == ("html", {"lang": "ar", "dir": "rtl"})
    sections = [attrs for tag, attrs in page.tags if tag == "section"]
    assert [(s["lang"], s["dir"]) for s in sections] == [("ar", "rtl"), ("en", "ltr")]
    text = "".join(page.text)
    arabic, english = text.split("After-action report: ", 1)
    assert "30/11/2026 3:56 مساءً" in arabic and "30/11/2026 3:56 PM" in english
    assert "قناة واحدة" in arabic and "11 رسالةً" in arabic and "3 إعادات" in arabic and "إخفاق واحد" in arabic
    assert "302.500 ث" in arabic and "302.500 s" in english
    assert sum(1 for tag, _ in page.tags if tag == "svg") == 2  # the timeline, in each language


def test_every_stored_string_is_text_never_markup() -> None:
    document = report_html(hostile_report(), ZoneInfo("Asia/Dubai"))
    page = parsed(document)
    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags and "img" not in tags and "link" not in tags and "iframe" not in tags
    assert not [(tag, name) for tag, attrs in page.tags for name in attrs if name.startswith("on")]
    text = "".join(page.text)
    assert HOSTILE in text and HOSTILE_CHANNEL in text  # shown as it was stored, as text
    assert "<script>" not in document and 'onload="' not in document


def test_the_report_is_self_contained() -> None:
    document = report_html(hostile_report(), ZoneInfo("Asia/Dubai"))
    page = parsed(document)
    references = [value for _tag, attrs in page.tags for name, value in attrs.items()
                  if name in ("href", "src", "srcset", "action", "data", "poster", "xlink:href") and value]
    assert references == [LINK, LINK]  # the alert's own public CAP link, in each language: nothing else to fetch
    assert not re.search(r"@import|url\(", document)
    # Any other URL in the page is inside a stored text, shown escaped as words (never a link or a resource).
    stray = {u for u in re.findall(r"https?://[^\s\"'<>&]+", document) if u != LINK}
    assert stray == {"https://evil.example/x"}
    assert all(f'="{u}' not in document for u in stray)

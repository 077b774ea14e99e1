"""Issue 15 in a real browser: with a phone on two SMS lists, the console's SMS total counts it once, as the
commit sends it, and a chip says how many were counted once (same service and browser as test_console_browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.service import test_console_browser
from tests.service.test_console_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Served, served, sync_api
from tests.service.test_console_words import _sign_in

pytestmark = pytest.mark.slow
__all__ = ["served", "sync_api"]

SECOND_SMS = """
[[channel]]
id = "sms-volunteers"
kind = "sms"
account_sid_env = "TWILIO_ACCOUNT_SID"
auth_token_env = "TWILIO_AUTH_TOKEN"
from = "+15005550006"
recipients = "recipients/volunteers.csv"
rate_per_second = 10
"""


@pytest.fixture(autouse=True)
def _two_sms_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped config plus a volunteers' SMS list holding every resident again."""
    shipped = test_console_browser._config

    def config(tmp_path: Path) -> Path:
        path = shipped(tmp_path)
        residents = (tmp_path / "recipients" / "residents.csv").read_text(encoding="utf-8")
        (tmp_path / "recipients" / "volunteers.csv").write_text(residents, encoding="utf-8")
        path.write_text(path.read_text(encoding="utf-8") + SECOND_SMS, encoding="utf-8")
        return path

    monkeypatch.setattr(test_console_browser, "_config", config)


def test_the_console_counts_a_phone_on_two_lists_once(sync_api: Any, served: Served) -> None:
    expect = sync_api.expect
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            _sign_in(sync_api, page, served, served.token)
            page.locator("#template").select_option("road_closure")
            with page.expect_response(lambda r: r.url.endswith("/api/preview") and r.status == 200) as answer:
                page.get_by_role("button", name="تعبئة بالأمثلة").click()
            preview = answer.value.json()
            sms = preview["sms"]
            listed = sum(m["recipients"] for m in preview["messages"] if m["kind"] == "sms")
            assert sms["listed"] == listed == 2 * sms["phones"] and sms["on_several"] == sms["phones"] > 0
            summary = page.locator("#preview-summary")
            expect(summary.locator('[data-chip="recipients"]')).to_have_attribute("data-count", str(sms["phones"]))
            expect(summary.locator('[data-chip="segments"]')).to_have_attribute("data-count", str(sms["segments"]))
            once = summary.locator('[data-chip="once"]')
            expect(once).to_have_attribute("data-count", str(sms["duplicates"]))
            expect(once).to_contain_text("رسالة SMS واحدة لكل رقم")
        finally:
            browser.close()

"""The HTML report of a live fire with faults, opened from disk in Chromium (Playwright), with a screenshot.

It must render right to left with the Arabic section first, and fetch nothing: the
only request the browser makes is the file itself. ``BROADCASTER_SCREENSHOTS=docs``
writes docs/report.png; otherwise the screenshot goes to tmp_path. Skips without
Chromium, as the console's browser test does (and fails instead under ``CI=true``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.cli import main
from tests.engine.providers import SECRETS, Providers
from tests.fakes.twilio import twilio_error
from tests.fakes.webhook import webhook_error
from tests.service.test_console_browser import CHROMIUM, CHROMIUM_ARGS, _shots, sync_api  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def report_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A live CLI fire: one SMS refused, the partner webhook retried once; its report written as HTML."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    target = tmp_path / "report.html"
    with Providers(tmp_path, recipients=3) as p:
        p.twilio.script(twilio_error(400, 21211, "The 'To' number is not a valid phone number."))
        p.webhook.script(webhook_error(503, retry_after=0))
        assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                          as_user="officer")) == 1
        alert_id = orjson.loads(capsys.readouterr().out)["alert_id"]
        assert main(p.cli("report", alert_id, "--html", str(target))) == 0
    return target


def test_the_html_report_renders_right_to_left_and_fetches_nothing(sync_api: Any, report_file: Path,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900}, locale="ar-AE")
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(report_file.as_uri())
            assert page.evaluate("document.documentElement.dir") == "rtl"
            directions = page.evaluate(
                "[...document.querySelectorAll('section')].map(s => [s.lang, getComputedStyle(s).direction,"
                " s.getBoundingClientRect().top])")
            assert [(lang, direction) for lang, direction, _top in directions] == [("ar", "rtl"), ("en", "ltr")]
            assert directions[0][2] < directions[1][2]  # the Arabic section comes first
            assert page.locator("svg.timeline").count() == 2
            assert page.locator("script").count() == 0
            page.screenshot(path=str(_shots(tmp_path) / "report.png"), full_page=True)
        finally:
            browser.close()
    assert requests == [report_file.as_uri()] and errors == []

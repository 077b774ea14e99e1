"""The web console in a real browser: Debian's Chromium, driven by Playwright, headless on loopback.

The real service (``make_app``) runs in-process on 127.0.0.1 on a thread of its own,
with the shipped channels.toml copied into ``tmp_path``; the test fires a dry-run,
so no fake provider is needed and nothing leaves the machine. The browser is a
separate process launched with every background-networking feature off.

Without Chromium (or the playwright package) the test skips and says why; under
``CI=true`` a missing browser is a failure, because CI must run it.

``BROADCASTER_SCREENSHOTS=docs`` writes the two README screenshots
(docs/console-preview.png and docs/console-alert.png); otherwise they go to tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from broadcaster.app.context import App, load
from broadcaster.app.users import Users
from broadcaster.service.app import make_app
from broadcaster.store import Store, open_store
from tests.service.plurals import RECIPIENT, SEGMENT, ar_count

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BROADCASTER_CHROMIUM", "/usr/bin/chromium"))
# No first-run, sync, component updates, QUIC or other background traffic: the only
# connections Chromium makes are to the service on 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
CYAN, RED = "rgb(14, 116, 144)", "rgb(185, 28, 28)"
FRAME_COLOUR = "getComputedStyle(document.body, '::before').borderTopColor"  # the coloured frame round the page

pytestmark = pytest.mark.slow


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture
def sync_api(request: pytest.FixtureRequest) -> Any:
    """playwright.sync_api, or skip (fail under CI) with the reason, printed even under ``pytest -q``."""
    reason = None
    try:
        from playwright import sync_api
    except ImportError:
        reason = "the playwright package is not installed (pip install -e '.[dev]')"
    if reason is None and not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set BROADCASTER_CHROMIUM)"
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"\nSKIPPED the console browser test: {reason}", yellow=True)
        pytest.skip(reason)
    return sync_api


@dataclass
class Served:
    url: str
    token: str  # console-officer, an operator
    officers: dict[str, str]  # two officers' tokens: one fires a two-person alert, the other reviews it


def _config(tmp_path: Path) -> Path:
    """The shipped channels.toml, its database in tmp_path and its templates and recipients from the repo."""
    text = (REPO / "channels.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^database = ".*"$', f'database = "{tmp_path / "broadcaster.db"}"', text)
    text = re.sub(r'(?m)^templates = ".*"$', f'templates = "{REPO / "templates"}"', text)
    text = re.sub(r'(?m)^runbooks = ".*"$', f'runbooks = "{REPO / "runbooks"}"', text)
    # The repo's demo signing pair (var/cap-signing, made by the suite's conftest).
    text = re.sub(r'(?m)^(cap_signing_(?:key|cert)) = "(.*)"$', lambda m: f'{m[1]} = "{REPO / m[2]}"', text)
    shutil.copytree(REPO / "recipients", tmp_path / "recipients")
    path = tmp_path / "channels.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The real service on 127.0.0.1 (port 0), on its own loop and thread, with one operator."""
    config = _config(tmp_path)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="console-service", daemon=True)
    thread.start()
    runner: web.AppRunner | None = None
    store: Store | None = None

    async def start() -> Served:
        nonlocal runner, store
        loaded, catalogue, database = load(str(config))
        store = await open_store(database)  # on the service's own loop, which serves it
        app = App(config=loaded, catalogue=catalogue, store=store, database=database)
        users = Users(store.db)
        token = (await users.add("console-officer", "operator")).reveal()
        officers = {name: (await users.add(name, "officer")).reveal() for name in ("first-officer", "second-officer")}
        runner = web.AppRunner(make_app(app))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return Served(f"http://{host}:{port}", token, officers)

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        if store is not None:
            asyncio.run_coroutine_threadsafe(store.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _shots(tmp_path: Path) -> Path:
    target = os.environ.get("BROADCASTER_SCREENSHOTS")
    return (REPO / target) if target else tmp_path


def test_console_fires_a_dry_run_and_guards_live(sync_api: Any, served: Served, tmp_path: Path) -> None:
    expect = sync_api.expect
    shots = _shots(tmp_path)
    outside: list[str] = []
    page_errors: list[str] = []
    fire_posts: list[str] = []
    seen: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))

            def on_request(request: Any) -> None:
                seen.append(request.url)
                if not request.url.startswith((served.url, "data:", f"blob:{served.url}/")):
                    outside.append(request.url)
                if request.method == "POST" and request.url == f"{served.url}/api/alerts":
                    fire_posts.append(request.post_data or "")

            page.on("request", on_request)

            # --- sign in: the token lives in sessionStorage only
            page.goto(served.url + "/")
            expect(page.locator("html")).to_have_attribute("dir", "rtl")
            expect(page.locator("html")).to_have_attribute("lang", "ar")
            page.get_by_label("رمز الدخول (API token)").fill(served.token)
            page.locator("#login-form button[type=submit]").click()
            expect(page.locator("#console")).to_be_visible()
            expect(page.locator("#who")).to_contain_text("console-officer")
            assert page.evaluate("sessionStorage.getItem('broadcaster.token')") == served.token
            assert page.evaluate("localStorage.length") == 0

            # --- the dry-run frame and banner
            body = page.locator("body")
            expect(body).to_have_attribute("data-mode", "dry-run")
            expect(page.locator("#mode-banner")).to_contain_text("DRY-RUN")
            expect(page.locator("#mode-banner")).to_contain_text("nothing leaves this machine")
            expect(page.locator("#mode-banner")).to_have_css("background-color", CYAN)
            expect(page.locator("#mode-footer")).to_have_css("background-color", CYAN)
            assert page.evaluate(FRAME_COLOUR) == CYAN

            # --- template, variables from the gazetteer and the template's choices
            page.locator("#template").select_option("road_closure")
            road = page.locator("#var-road")
            expect(road).to_be_visible()
            road_codes = road.locator("option").evaluate_all("options => options.map(o => o.value)")
            assert "E11" in road_codes and "DXB-MARINA" not in road_codes  # only places of type road
            reasons = page.locator("#var-reason option").evaluate_all("options => options.map(o => o.value)")
            assert reasons == ["", "maintenance", "accident", "event", "flooding", "security"]
            expect(page.locator("#var-starts-offset")).to_have_value("+04:00")
            expect(page.locator("#var-detour-ar")).to_have_attribute("dir", "rtl")
            expect(page.locator("#var-detour-en")).to_have_attribute("dir", "ltr")
            expect(page.locator("#fire")).to_be_disabled()  # nothing previewed yet

            with page.expect_response(lambda r: r.url.endswith("/api/preview") and r.status == 200) as answer:
                page.get_by_role("button", name="تعبئة بالأمثلة").click()
            preview = answer.value.json()
            assert preview["template"] == "road_closure"

            # --- per-channel previews: Arabic rtl, English ltr, lengths and SMS segments as the server measured
            x_ar = page.locator('.msg[data-channel="x-authority"][data-language="ar"]')
            expect(x_ar.locator(".msg-text")).to_have_attribute("dir", "rtl")
            expect(x_ar.locator(".msg-text")).to_contain_text("إغلاق \u2067شارع الشيخ زايد\u2069 من \u2067")
            # ... ending with its verification line
            expect(x_ar.locator(".msg-text")).to_contain_text("تحقق: \u2066https://alerts.example.gov/v/")
            x_en = page.locator('.msg[data-channel="x-authority"][data-language="en"]')
            expect(x_en.locator(".msg-text")).to_have_attribute("dir", "ltr")
            expect(x_en.locator(".msg-text")).to_contain_text("\u2066Sheikh Zayed Road\u2069 will be closed")
            expect(page.locator(".msg")).to_have_count(len(preview["messages"]))
            for message in preview["messages"]:
                card = page.locator(f'.msg[data-channel="{message["channel"]}"][data-language="{message["language"]}"]')
                expect(card.locator(".len")).to_have_text(f'{message["length"]}/{message["limit"]} {message["unit"]}')
                if message["kind"] == "sms":
                    expect(card.locator(".seg")).to_have_attribute("data-segments", str(message["segments"]))
                    expect(card.locator(".seg")).to_contain_text(ar_count(message["segments"], SEGMENT))
                    expect(card.locator(".seg")).to_contain_text(message["encoding"])
                    expect(card.locator(".cost")).to_have_attribute("data-cost", str(message["cost_segments"]))
                    expect(card.locator(".cost")).to_contain_text(ar_count(message["cost_segments"], SEGMENT))
            sms_ar = next(m for m in preview["messages"] if m["channel"] == "sms-residents" and m["language"] == "ar")
            assert sms_ar["encoding"] == "UCS-2" and sms_ar["segments"] >= 2  # Arabic forces UCS-2
            segments = sum(m["cost_segments"] for m in preview["messages"] if m["kind"] == "sms")
            segments_chip = page.locator('#preview-summary [data-chip="segments"]')
            expect(segments_chip).to_have_attribute("data-count", str(segments))
            # The combined Telegram post keeps each paragraph in its own direction.
            combined = page.locator('.msg[data-channel="telegram-authority"] .para')
            expect(combined.first).to_have_attribute("dir", "rtl")
            expect(combined.last).to_have_attribute("dir", "ltr")
            expect(page.locator('.msg[data-channel="telegram-authority"] .msg-text b').first).to_be_visible()
            # The preview's alert cards, Arabic first, drawn by the server from the body previewed.
            cards = page.locator("#preview-cards img")
            expect(cards).to_have_count(2)
            expect(cards.first).to_have_attribute("lang", "ar")
            expect(cards.last).to_have_attribute("lang", "en")
            assert cards.first.evaluate("img => img.decode().then(() => img.naturalWidth)") == 1080
            page.screenshot(path=str(shots / "console-preview.png"))

            # --- fire the dry-run and follow its live progress to the end
            fire = page.locator("#fire")
            expect(fire).to_be_enabled()
            expect(fire).to_contain_text("محاكاة — لا يُرسل شيء")
            with page.expect_response(lambda r: r.url.endswith("/api/alerts") and r.request.method == "POST") as fired:
                fire.click()
            assert fired.value.status == 202, fired.value.text()
            alert_id = fired.value.json()["alert_id"]
            assert json.loads(fire_posts[0])["mode"] == "dry-run"
            expect(page.locator("#progress-id")).to_have_text(alert_id)
            expect(page.locator("#progress-state")).to_have_attribute("data-phase", "done")
            expect(page.locator("#progress-state")).to_contain_text("اكتملت المحاكاة")
            expect(page.locator("#progress-mode")).to_contain_text("DRY-RUN")
            channels = {m["channel"] for m in preview["messages"]}
            for channel in channels:
                row = page.locator(f'.prow[data-channel="{channel}"]')
                expect(row).to_be_visible()
                done, total = row.locator(".tally").inner_text().split("/")
                assert done == total, (channel, done, total)
            history_row = page.locator(f'#history-body tr[data-alert="{alert_id}"]')
            expect(history_row).to_be_visible()
            expect(history_row).to_contain_text("road_closure")
            expect(history_row.locator(".mode-tag")).to_contain_text("DRY-RUN")
            expect(page.locator("#cancel-alert")).to_be_enabled()
            page.locator("#progress-panel").evaluate("panel => panel.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(shots / "console-alert.png"))

            # --- a dry-run's deliveries read "recorded" (سُجّل), never "sent" (أُرسل): nothing left the machine
            counts = page.locator(".prow .prow-counts")
            expect(counts.first).to_contain_text("سُجّل")
            assert not any("أُرسل" in text for text in counts.all_inner_texts())
            expect(history_row).to_contain_text("سُجّل")
            expect(history_row).not_to_contain_text("أُرسل")

            # --- its after-action report: fetched with the Authorization header, opened as a blob in a new tab
            report_button = page.locator("#open-report")
            expect(report_button).to_have_text("تقرير ما بعد التنبيه")
            with page.expect_request(lambda r: r.url.endswith(f"/api/alerts/{alert_id}/report.html")) as asked, \
                    page.context.expect_page() as opened:
                report_button.click()
            assert asked.value.headers.get("authorization") == f"Bearer {served.token}"
            report = opened.value
            report.wait_for_load_state()
            assert report.url.startswith(f"blob:{served.url}/")
            expect(report.locator("h1").first).to_contain_text(f"تقرير ما بعد التنبيه: {alert_id}")
            assert report.evaluate("document.documentElement.dir") == "rtl"
            assert report.evaluate("getComputedStyle(document.querySelector('.mode')).fontWeight") == "700"
            assert report.evaluate("window.opener") is None
            report.close()

            # --- English toggle: the page turns ltr, message texts keep their own direction
            page.locator("#lang-toggle").click()
            expect(page.locator("html")).to_have_attribute("dir", "ltr")
            expect(page.locator("#h-preview")).to_contain_text("Preview")
            expect(x_ar.locator(".msg-text")).to_have_attribute("dir", "rtl")
            page.locator("#lang-toggle").click()
            expect(page.locator("html")).to_have_attribute("dir", "rtl")

            # --- live: red frame and banner; an operator's fire button stays disabled and says why, in both
            # languages (the server would refuse it: 403 forbidden_role); an officer's waits for the typed id
            page.evaluate("window.scrollTo(0, 0)")
            page.get_by_label("بث حقيقي · LIVE").check()
            expect(body).to_have_attribute("data-mode", "live")
            banner = page.locator("#mode-banner")
            expect(banner).to_contain_text("LIVE ALERT TO THE PUBLIC")
            expect(banner).to_contain_text("بث حقيقي")
            assert page.evaluate(FRAME_COLOUR) == RED
            expect(page.locator("#mode-footer")).to_have_css("background-color", RED)
            expect(page.locator("#preview-status")).to_have_text("هذا بالضبط ما سيُرسل.")  # fresh live preview
            confirm = page.locator("#confirm")
            expect(confirm).to_be_visible()
            expect(fire).to_be_disabled()
            expect(fire).to_contain_text("بث حقيقي إلى الجمهور")
            confirm.fill("road_closure")  # typed exactly, and still the operator may not
            expect(fire).to_be_disabled()
            hint = page.locator("#fire-hint")
            expect(hint).to_contain_text("دور المشغّل لا يسمح بالبث الحقيقي لهذا القالب")
            expect(hint).to_contain_text("Your role (operator) may not fire this template live")
            fire.click(force=True)  # a click on the disabled button must send nothing
            page.evaluate("document.getElementById('fire').click()")
            confirm.fill("")
            page.wait_for_timeout(300)
            assert len(fire_posts) == 1, fire_posts  # only the dry-run ever reached POST /api/alerts

            # --- runbook rehearsal: the timeline of a dry-run on a virtual clock, both languages
            page.locator("#runbook").select_option("flood_response")
            expect(page.locator("#rbi-area")).to_have_value("DXB-HATTA")
            expect(page.locator("#rbi-detour-ar")).to_have_attribute("dir", "rtl")
            with page.expect_response(lambda r: r.url.endswith("/api/runbooks/flood_response/rehearse")) as rehearsed:
                page.locator("#rehearse").click()
            assert rehearsed.value.status == 200, rehearsed.value.text()
            timeline = rehearsed.value.json()
            steps = page.locator("#timeline .tl-step")
            expect(steps).to_have_count(len(timeline["steps"]))
            expect(steps.first).to_have_attribute("data-step", timeline["steps"][0]["step"])
            first_ar = steps.first.locator('.msg[data-language="ar"] .msg-text').first
            expect(first_ar).to_have_attribute("dir", "rtl")
            expect(first_ar).to_contain_text(re.compile("[\u0600-\u06FF]{3}"))
            first_en = steps.first.locator('.msg[data-language="en"] .msg-text').first
            expect(first_en).to_have_attribute("dir", "ltr")
            expect(page.locator("#rehearse-status")).to_contain_text(timeline["run_id"])
            assert len(fire_posts) == 1  # a rehearsal fires nothing through POST /api/alerts

            # --- 390 px wide: one column, no sideways scrolling
            page.set_viewport_size({"width": 390, "height": 844})
            expect(page.locator("#mode-banner")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

            assert not page_errors, page_errors
            assert not outside, f"the console loaded something from outside the service: {outside}"
            assert not [u for u in seen if served.token in u], "a token travelled in a URL"
        finally:
            browser.close()


def test_console_marks_the_variable_the_server_refuses_and_keeps_fire_disabled(sync_api: Any, served: Served) -> None:
    """A time outside its rule (ends before starts) comes back as ``field: variables.ends``: that input is marked."""
    expect = sync_api.expect
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            page.set_default_timeout(20_000)
            page.goto(served.url + "/")
            page.get_by_label("رمز الدخول (API token)").fill(served.token)
            page.locator("#login-form button[type=submit]").click()
            page.locator("#template").select_option("road_closure")
            with page.expect_response(lambda r: r.url.endswith("/api/preview") and r.status == 200):
                page.get_by_role("button", name="تعبئة بالأمثلة").click()
            expect(page.locator("#fire")).to_be_enabled()
            starts = page.locator("#var-starts").input_value()
            ends = page.locator("#var-ends")
            expect(ends).not_to_have_attribute("aria-invalid", "true")
            with page.expect_response(lambda r: r.url.endswith("/api/preview") and r.status == 400) as refused:
                ends.fill(starts)  # a closure that ends when it starts
            assert refused.value.json()["field"] == "variables.ends"
            assert refused.value.json()["reason"] == "time_rule"
            expect(ends).to_have_attribute("aria-invalid", "true")
            # Said in Arabic, with the template's own labels for both variables; in English, the server's text.
            expect(page.locator("#preview-list .notice")).to_have_text(
                "«نهاية الإغلاق» يجب أن يكون بعد «بداية الإغلاق».")
            page.locator("#lang-toggle").click()
            expect(page.locator("#preview-list .notice")).to_contain_text("variable 'ends'")
            page.locator("#lang-toggle").click()
            expect(page.locator("#fire")).to_be_disabled()
        finally:
            browser.close()


def _post(served: Served, path: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(served.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_second_officer_reviews_what_the_public_will_see_in_the_live_frame(
    sync_api: Any, served: Served
) -> None:
    """A held live earthquake: its texts, audience and cost, a red frame, a readable deadline, a typed release."""
    expect = sync_api.expect
    status, held = _post(served, "/api/alerts", {"template": "earthquake", "use_examples": True, "mode": "live",
                                                 "confirm": "earthquake"}, served.officers["first-officer"])
    assert status == 202 and held["state"] == "awaiting_confirmation", held
    alert_id = held["alert_id"]
    releases: list[str] = []
    page_errors: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))

            def release(route: Any) -> None:  # the release itself is the API's (tests/service/test_two_person.py)
                releases.append(route.request.post_data or "")
                route.fulfill(status=202, content_type="application/json",
                              body=json.dumps({"alert_id": alert_id, "state": "sending"}))

            page.route(f"{served.url}/api/alerts/{alert_id}/confirm", release)
            page.goto(served.url + "/")
            page.get_by_label("رمز الدخول (API token)").fill(served.officers["second-officer"])
            page.locator("#login-form button[type=submit]").click()
            expect(page.locator("#console")).to_be_visible()
            expect(page.locator("body")).to_have_attribute("data-mode", "dry-run")

            page.locator(f'#history-body tr[data-alert="{alert_id}"] button').first.click()
            review = page.locator("#review")
            expect(review).to_be_visible()
            # The frame says what releasing it does.
            expect(page.locator("body")).to_have_attribute("data-mode", "live")
            assert page.evaluate(FRAME_COLOUR) == RED
            # Every channel's text, in its own direction, with the SMS audience and cost.
            x_ar = review.locator('.msg[data-channel="x-authority"][data-language="ar"] .msg-text')
            expect(x_ar).to_have_attribute("dir", "rtl")
            expect(x_ar).to_contain_text("زلزال")
            expect(review.locator('.msg[data-channel="x-authority"][data-language="en"] .msg-text')).to_contain_text(
                "earthquake")
            expect(review.locator('.msg[data-kind="sms"]').first).to_be_visible()
            expect(review.locator('.msg[data-kind="telegram"]').first).to_be_visible()
            recipients = page.locator('#review-summary [data-chip="recipients"]')
            count = int(recipients.get_attribute("data-count") or "-1")
            expect(recipients).to_have_text(f"SMS: {ar_count(count, RECIPIENT)}")
            # The deadline reads in order: its clock time isolated from the Arabic around it.
            deadline = page.locator("#progress-state")
            expect(deadline).to_contain_text(re.compile("آخر موعد للتأكيد: \u2068\\d{1,2}:\\d{2}\u2069 (صباحاً|مساءً)"))
            assert "-11-" not in deadline.inner_text() and "T" not in deadline.inner_text()

            confirm = page.locator("#confirm-second")
            expect(confirm).to_be_disabled()
            page.locator("#review-confirm").fill("flood_warning")
            expect(confirm).to_be_disabled()
            confirm.click(force=True)
            page.locator("#review-confirm").fill("earthquake")
            expect(confirm).to_be_enabled()
            confirm.click()
            page.wait_for_timeout(300)
            assert [json.loads(body) for body in releases] == [{"confirm": "earthquake"}]
            assert not page_errors, page_errors
        finally:
            browser.close()

"""Issue 12, point 6, in a real browser: the console's Arabic numbers and words (plurals, durations, labels,
translated errors, dates, ids), its history filter and its 390 px layout, and who may press live fire.

Same service and browser as ``test_console_browser.py`` (its fixtures); a screenshot each of the labels, the
plurals and the 390 px history (under tmp_path, or ``BROADCASTER_SCREENSHOTS``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.service.plurals import ALERT, CHANNEL, MESSAGE, NOUNS, RECIPIENT, SEGMENT, ar_count
from tests.service.test_console_browser import (  # the fixtures too: one service, one browser setup
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    Served,
    _post,
    _shots,
    served,
    sync_api,
)

pytestmark = pytest.mark.slow
__all__ = ["served", "sync_api"]


def _sign_in(sync_api: Any, page: Any, served: Served, token: str) -> None:
    page.set_default_timeout(20_000)
    page.goto(served.url + "/")
    page.get_by_label("رمز الدخول (API token)").fill(token)
    page.locator("#login-form button[type=submit]").click()
    sync_api.expect(page.locator("#console")).to_be_visible()


def test_the_console_counts_labels_dates_and_history_in_arabic(sync_api: Any, served: Served, tmp_path: Path) -> None:
    """Issue 12, point 6: Arabic plurals and durations, the template's labels, the offset hint, ids in isolates,
    dd/mm/yyyy, the history without dry-runs unless asked (rehearsals dated ahead after real alerts), and 390 px."""
    expect = sync_api.expect
    shots = _shots(tmp_path)
    status, held = _post(served, "/api/alerts", {"template": "earthquake", "use_examples": True, "mode": "live",
                                                 "confirm": "earthquake"}, served.officers["first-officer"])
    assert status == 202, held  # a real (live) alert, held for its second officer
    page_errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            _sign_in(sync_api, page, served, served.token)

            # --- every counted noun agrees with its number, 0 to 205 (Intl.PluralRules("ar") against CLDR's rules)
            for noun, forms in NOUNS.items():
                shown = page.evaluate(f"[...Array(206).keys()].map(n => BROADCASTER_WORDS.count('ar', '{noun}', n))")
                assert shown == [ar_count(n, forms) for n in range(206)], noun
            assert page.evaluate("[0, 1, 2, 3, 11, 100].map(n => BROADCASTER_WORDS.count('ar', 'channel', n))") == [
                "لا قنوات", "قناة واحدة", "قناتان", "3 قنوات", "11 قناةً", "100 قناة"]
            assert page.evaluate("BROADCASTER_WORDS.duration('ar', 60 * 3600 + 58 * 60)") == "60 ساعة و58 دقيقة"
            assert page.evaluate("BROADCASTER_WORDS.duration('en', 60 * 3600 + 58 * 60)") == "60 hours 58 minutes"
            assert page.evaluate("BROADCASTER_WORDS.duration('ar', 7200, true)") == "ساعتين"  # after a preposition
            assert page.evaluate("BROADCASTER_WORDS.duration('ar', 720 * 3600, true)") == "30 يوماً"
            # Server errors in Arabic, from their reason (docs/api.md); without one, the code's Arabic and the
            # server's English detail in a left-to-right isolate, never English alone.
            explain = "e => BROADCASTER_WORDS.explain('ar', e, n => ({ends: 'نهاية الإغلاق'})[n] || n)"
            assert page.evaluate(f"({explain})({{status: 403, code: 'forbidden', message: 'x', "
                                 "reason: 'forbidden_role', params: {needs: 'officer', role: 'operator'}})") == (
                "دورك (مشغّل) لا يسمح بهذا؛ يلزم دور الضابط أو أعلى.")
            assert page.evaluate(f"({explain})({{status: 400, code: 'invalid', message: 'x', field: 'variables.ends', "
                                 "reason: 'time_rule', params: {rule: 'ahead', hours: 720}})") == (
                "«نهاية الإغلاق» أبعد من 30 يوماً من الآن؛ تحقق من التاريخ.")
            # Every missing variable at once (params.variables), by its label; an older answer (field only) still reads.
            assert page.evaluate(f"({explain})({{status: 400, code: 'invalid', message: 'x', field: 'variables', "
                                 "reason: 'required', params: {variables: ['starts', 'ends'], "
                                 "invalid: ['road']}})") == (
                "حقول مطلوبة لم تُملأ: «starts»، «نهاية الإغلاق». وقيم غير صالحة: «road».")
            assert page.evaluate(f"({explain})({{status: 400, code: 'invalid', message: 'x', field: 'variables.ends', "
                                 "reason: 'required'})") == "«نهاية الإغلاق» مطلوب."
            assert page.evaluate(f"({explain})({{status: 400, code: 'invalid', message: 'x', field: 'variables', "
                                 "reason: 'invalid_values', params: {variables: ['road', 'ends']}})") == (
                "قيم غير صالحة: «road»، «نهاية الإغلاق».")
            assert page.evaluate(f"({explain})({{status: 409, code: 'conflict', message: 'already confirmed'}})") == (
                "لا تسمح حالة التنبيه بهذا الآن: \u2066already confirmed\u2069")

            # --- the template's labels, in the UI's language, never the identifiers
            page.locator("#template").select_option("road_closure")
            expect(page.locator('label[for="var-road"]')).to_contain_text("الطريق")
            expect(page.locator('label[for="var-road"] .meta')).to_have_text("مطلوب · حتى 32 حرفاً")
            expect(page.locator("#var-detour-label")).to_contain_text("الطريق البديل")
            expect(page.locator("#var-starts-label")).to_contain_text("بداية الإغلاق")
            expect(page.locator('label[for="var-reason"]')).to_contain_text("سبب الإغلاق")
            form_text = page.locator("#vars-form").inner_text()
            for name in ("road", "reason", "starts", "ends", "detour"):
                assert name not in form_text, name
            # Options short enough for the select, the code isolated left-to-right, both languages in the title.
            e11 = page.locator('#var-road option[value="E11"]')
            expect(e11).to_have_text("شارع الشيخ زايد (\u2066E11\u2069)")
            expect(e11).to_have_attribute("title", re.compile("Sheikh Zayed Road"))
            with page.expect_response(lambda r: r.url.endswith("/api/preview") and r.status == 200) as answer:
                page.get_by_role("button", name="تعبئة بالأمثلة").click()
            preview = answer.value.json()
            # The date control is drawn in the browser's locale; under it the same moment as dd/mm/yyyy.
            day, month, year = page.locator("#var-starts").input_value()[:10].split("-")[::-1]
            expect(page.locator("#var-starts-echo")).to_contain_text(f"\u2068{day}/{month}/{year}\u2069")
            expect(page.locator("#var-starts-echo")).to_contain_text(re.compile("صباحاً|مساءً"))
            page.locator(".area-vars").screenshot(path=str(shots / "console-labels.png"))

            # --- the preview's counts
            messages = preview["messages"]
            channels = len({m["channel"] for m in messages})
            sms = [m for m in messages if m["kind"] == "sms"]
            recipients = sum(m["recipients"] for m in sms)
            segments = sum(m["cost_segments"] for m in sms)
            summary = page.locator("#preview-summary")
            expect(summary.locator('[data-chip="channels"]')).to_have_text(ar_count(channels, CHANNEL))
            expect(summary.locator('[data-chip="messages"]')).to_have_text(ar_count(len(messages), MESSAGE))
            expect(summary.locator('[data-chip="recipients"]')).to_have_text(f"SMS: {ar_count(recipients, RECIPIENT)}")
            expect(summary.locator('[data-chip="segments"]')).to_have_text(f"تكلفة SMS: {ar_count(segments, SEGMENT)}")
            expect(page.locator("#fire-summary")).to_have_text(f"{ar_count(channels, CHANNEL)} · SMS: "
                                                               f"{ar_count(recipients, RECIPIENT)}، "
                                                               f"{ar_count(segments, SEGMENT)}")
            page.locator(".area-preview").screenshot(path=str(shots / "console-plurals.png"))
            page.locator("#lang-toggle").click()
            expect(page.locator("#var-detour-label")).to_contain_text("Detour")
            expect(summary.locator('[data-chip="channels"]')).to_have_text(f"{channels} channels")
            page.locator("#lang-toggle").click()
            expect(page.locator("#var-detour-label")).to_contain_text("الطريق البديل")

            # --- a malformed offset says how to write it, for that field, not "fill in the fields"
            page.locator("#var-starts-offset").fill("4")
            status_line = page.locator("#preview-status")
            expect(status_line).to_contain_text("اكتب فرق التوقيت عن UTC بالشكل")
            expect(status_line).to_contain_text("بداية الإغلاق")
            expect(status_line).not_to_contain_text("أكمل الحقول")
            expect(page.locator("#var-starts-offset-hint")).to_be_visible()
            expect(page.locator("#fire")).to_be_disabled()
            with page.expect_response(lambda r: r.url.endswith("/api/preview") and r.status == 200):
                page.locator("#var-starts-offset").fill("+04:00")
            expect(page.locator("#var-starts-offset-hint")).to_be_hidden()

            # --- a rehearsal: its alerts counted, its span in Arabic words, its run id isolated left-to-right
            page.locator("#runbook").select_option("flood_response")
            expect(page.locator("#runbook-info")).to_contain_text(re.compile("خطوات|خطوتان|خطوة"))
            with page.expect_response(lambda r: r.url.endswith("/api/runbooks/flood_response/rehearse")) as rehearsed:
                page.locator("#rehearse").click()
            timeline = rehearsed.value.json()
            alerts = sum(1 for step in timeline["steps"] if step["alert_id"])
            done = page.locator("#rehearse-status")
            expect(done).to_contain_text(f"اكتمل التمرين: {ar_count(alerts, ALERT)} على مدى ")
            expect(done).to_contain_text(f"\u2066{timeline['run_id']}\u2069")
            assert re.search(r"\d+[hm]\b", done.inner_text()) is None, done.inner_text()
            assert re.search("ساعة|ساعات|ساعتان|دقيقة|دقائق|دقيقتان", done.inner_text())

            # --- the history: the held live alert; the rehearsal's dry-runs only when asked, after the real ones
            page.locator("#history-refresh").click()
            rows = page.locator("#history-body tr")
            expect(rows.first).to_have_attribute("data-alert", held["alert_id"])
            expect(page.locator('#history-body tr[data-mode="dry-run"]')).to_have_count(0)
            expect(page.locator("#history-note")).to_contain_text("المحاكاة مخفية")
            sent = rows.first.locator("time").inner_text()
            shape = "\u2068\\d{2}/\\d{2}/\\d{4}\u2069 \u2068\\d{1,2}:\\d{2}\u2069\u00a0(صباحاً|مساءً)"
            assert re.fullmatch(shape, sent), sent
            page.locator("#history-all").check()
            dry_rows = page.locator('#history-body tr[data-mode="dry-run"]')
            expect(dry_rows).to_have_count(alerts)
            order = rows.evaluate_all("rows => rows.map(r => [r.dataset.alert, r.dataset.ahead === 'true'])")
            aheads = [ahead for _, ahead in order]
            assert any(aheads) and aheads == sorted(aheads), order  # every row dated ahead after every other
            ids = [alert_id for alert_id, _ in order]
            assert ids.index(held["alert_id"]) < aheads.index(True), order  # the real alert is not buried

            # --- 390 px: the history's cells stay on screen, one labelled card per alert
            page.set_viewport_size({"width": 390, "height": 844})
            page.locator(".area-history").scroll_into_view_if_needed()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            boxes = page.locator("#history-body td").evaluate_all(
                "cells => cells.map(c => { const r = c.getBoundingClientRect(); return [r.left, r.right]; })")
            assert boxes and all(left >= 0 and right <= 390 for left, right in boxes), boxes
            expect(rows.first.locator("td").first).to_have_attribute("data-label", "المعرّف")
            page.locator(".area-history").screenshot(path=str(shots / "console-390.png"))
            assert not page_errors, page_errors
        finally:
            browser.close()


def test_an_officers_live_fire_waits_for_the_typed_template_id(sync_api: Any, served: Served) -> None:
    expect = sync_api.expect
    fire_posts: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            page.on("request", lambda r: fire_posts.append(r.post_data or "") if r.method == "POST"
                    and r.url == f"{served.url}/api/alerts" else None)
            _sign_in(sync_api, page, served, served.officers["first-officer"])
            page.locator("#template").select_option("road_closure")
            with page.expect_response(lambda r: r.url.endswith("/api/preview") and r.status == 200):
                page.get_by_role("button", name="تعبئة بالأمثلة").click()
            page.get_by_label("بث حقيقي · LIVE").check()
            expect(page.locator("#preview-status")).to_have_text("هذا بالضبط ما سيُرسل.")
            fire, confirm = page.locator("#fire"), page.locator("#confirm")
            expect(page.locator("#confirm-label")).to_contain_text("«\u2066road_closure\u2069»")
            for wrong in ("road_closur", "Road_closure", "road_closure ", "flood_warning"):
                confirm.fill(wrong)
                expect(fire).to_be_disabled()
                fire.click(force=True)  # a click on the disabled button must send nothing
                page.evaluate("document.getElementById('fire').click()")
            confirm.fill("road_closure")
            expect(fire).to_be_enabled()
            confirm.fill("")
            expect(fire).to_be_disabled()
            page.wait_for_timeout(300)
            assert fire_posts == []
        finally:
            browser.close()


def test_a_correction_names_the_alert_it_corrects_in_a_left_to_right_isolate(sync_api: Any, served: Served) -> None:
    """A referenced id inside Arabic text displays in order ("يصحّح ⁦20261130-…⁩"), never reversed."""
    expect = sync_api.expect
    status, fired = _post(served, "/api/alerts", {"template": "road_closure", "use_examples": True,
                                                  "mode": "dry-run"}, served.token)
    assert status == 202, fired
    original = fired["alert_id"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            _sign_in(sync_api, page, served, served.token)
            expect(page.locator(f'#history-body tr[data-alert="{original}"]')).to_have_count(0)  # a dry-run: hidden
            page.locator("#history-all").check()
            page.locator(f'#history-body tr[data-alert="{original}"] button').click()
            expect(page.locator("#progress-state")).to_have_attribute("data-phase", "done")
            with page.expect_response(lambda r: r.url.endswith(f"/api/alerts/{original}/cancel")) as cancelled:
                page.locator("#cancel-alert").click()
            assert cancelled.value.status == 202, cancelled.value.text()
            line = page.locator("#progress-template")
            expect(line).to_contain_text(f"يصحّح \u2066{original}\u2069")
            expect(line).to_contain_text("إلغاء")
            expect(line).to_contain_text("\u2066cancel\u2069")
        finally:
            browser.close()

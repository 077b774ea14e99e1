"""Issue 14 in a real browser: an alert whose SMS failover moved says so on both channels' progress rows.

Same service and browser as ``test_console_browser.py`` (its fixtures). The alert is queued (``fire --live
--queue``: committed, no worker sends it), then failover's move is made in the store, as a primary whose circuit
opened makes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cli import main
from broadcaster.store import Store
from tests.service.test_console_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Served, served, sync_api
from tests.support import read, token_file

pytestmark = pytest.mark.slow
__all__ = ["served", "sync_api"]


def test_an_alert_whose_sms_failed_over_says_so_on_both_channels(sync_api: Any, served: Served,
                                                                 tmp_path: Path) -> None:
    expect = sync_api.expect
    config, database = tmp_path / "channels.toml", tmp_path / "broadcaster.db"
    officer = token_file(tmp_path, database, "officer")
    assert main(["--config", str(config), "--token-file", str(officer), "fire", "road_closure", "--use-examples",
                 "--live", "--yes", "--queue", "--channels", "sms-residents"]) == 0

    async def fail_over(store: Store) -> tuple[str, int]:
        (alert,) = await store.alerts.recent()
        moved = await store.leases.move("sms-residents", "sms-residents-infobip", now=time.time(), owner="test",
                                        detail="moved from sms-residents to sms-residents-infobip: circuit open "
                                               "after 5 server errors in a row", limit=2)
        return alert.id, moved

    alert_id, moved = read(str(database), fail_over)
    assert moved == 2
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="ar-AE")
            page.set_default_timeout(20_000)
            page.goto(served.url + "/")
            page.get_by_label("رمز الدخول (API token)").fill(served.token)
            page.locator("#login-form button[type=submit]").click()
            expect(page.locator("#console")).to_be_visible()
            page.locator(f'#history-body tr[data-alert="{alert_id}"] td.open button').click()
            expect(page.locator("#progress-id")).to_have_text(alert_id)
            primary = page.locator('.prow[data-channel="sms-residents"] .prow-moved')
            backup = page.locator('.prow[data-channel="sms-residents-infobip"] .prow-moved')
            expect(primary).to_have_text("نُقل إلى \u2066sms-residents-infobip\u2069 بعد تعطّل المزوّد: 2")
            expect(backup).to_have_text("منقول من \u2066sms-residents\u2069 بعد تعطّل مزوّده: 2")
        finally:
            browser.close()

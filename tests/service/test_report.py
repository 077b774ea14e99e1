"""GET /api/alerts/{id}/report and /report.html: any role with a token, 404 for an unknown alert."""

from __future__ import annotations

import re

from tests.service.support import PUBLIC_URL, USERS, Api


async def fire_live(api: Api) -> str:
    status, body = await api.fire("officer", mode="live")
    assert status == 202, body
    await api.settle()
    return str(body["alert_id"])


async def test_every_role_reads_the_report_as_json_and_html(api: Api) -> None:
    alert_id = await fire_live(api)
    for user in USERS:
        status, report = await api.get(f"/api/alerts/{alert_id}/report", user)
        assert status == 200, (user, report)
        assert report["alert_id"] == alert_id
        assert {r["channel"] for r in report["reach"]} == set(await api.app.store.alerts.state_counts(alert_id))
        status, page = await api.get(f"/api/alerts/{alert_id}/report.html", user)
        assert status == 200 and page.decode().startswith("<!DOCTYPE html>")


async def test_the_html_report_is_rtl_self_contained_and_served_with_the_security_headers(api: Api) -> None:
    alert_id = await fire_live(api)
    async with api.client.get(f"/api/alerts/{alert_id}/report.html", headers=api.headers("viewer")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        page = await response.text()
    assert '<html lang="ar" dir="rtl">' in page and '<section lang="en" dir="ltr"' in page
    assert "<script" not in page
    own = f"{PUBLIC_URL}/cap/{alert_id}.xml"
    texts = " ".join(m.text for m in await api.app.store.alerts.messages(alert_id))
    for url in re.findall(r"https?://[^\s\"'<>&]+", page):
        assert url == own or url in texts, url  # the alert's public link, or words of the message it sent
    assert f'href="{own}"' in page


async def test_without_a_token_or_for_an_unknown_alert_nothing_is_shown(api: Api) -> None:
    alert_id = await fire_live(api)
    for path in (f"/api/alerts/{alert_id}/report", f"/api/alerts/{alert_id}/report.html"):
        status, body = await api.get(path, user=None)
        assert status == 401 and body["error"] == "unauthorized"
    for path in ("/api/alerts/nope-123/report", "/api/alerts/nope-123/report.html"):
        status, body = await api.get(path)
        assert status == 404 and "nope-123" in body["message"]

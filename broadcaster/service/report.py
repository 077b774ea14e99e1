"""``GET /api/alerts/{id}/report`` (JSON) and ``/report.html`` (the self-contained HTML): any role may read them.

The report is built in :mod:`broadcaster.app.report`, exactly as ``broadcaster report``
builds it; the HTML is rendered on a thread (a big alert's tables are CPU work).
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.app.report import Report, build_report
from broadcaster.app.report_html import report_html
from broadcaster.clock import in_thread
from broadcaster.service.http import ApiError, json_response
from broadcaster.service.state import SERVICE


async def report(request: web.Request) -> web.Response:
    return json_response((await _build(request)).as_json())


async def report_page(request: web.Request) -> web.Response:
    """The HTML report; ``attachment`` keeps the file name an incident record would store it under."""
    built = await _build(request)
    page = await in_thread(report_html, built, request.app[SERVICE].config.timezone)
    return web.Response(text=page, content_type="text/html", charset="utf-8", headers={
        "Content-Disposition": f'inline; filename="report-{built.alert.id}.html"', "Cache-Control": "no-store"})


async def _build(request: web.Request) -> Report:
    service = request.app[SERVICE]
    alert_id = request.match_info["alert_id"]
    if await service.app.store.alerts.find(alert_id) is None:
        raise ApiError(404, "not_found", f"no alert with id {alert_id!r}")
    return await build_report(service.app, alert_id, now=service.clock.now())

"""Read-only handlers: who am I, templates, gazetteer, channels, preview, alerts, the delivery log.

Every role may call these. Preview renders exactly what a fire would send but
stores nothing and needs no approval (an unapproved template can be previewed,
not fired).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.app.fire import plan_held
from broadcaster.engine.outbox import Plan, count_phones, plan_alert
from broadcaster.errors import InputError
from broadcaster.service.bodies import parse_fire
from broadcaster.service.http import ApiError, current_user, input_error, json_response, read_json
from broadcaster.service.hub import OPEN_STATES
from broadcaster.service.query import ALERTS_LIMIT, PAGE_LIMIT, PAGE_OFFSET, read_modes
from broadcaster.service.state import SERVICE, Service
from broadcaster.service.views import (
    alert_summary,
    channel_summary,
    delivery,
    gazetteer_list,
    held_preview,
    pending_summary,
    template_detail,
    template_summary,
)
from broadcaster.store.pending import AWAITING, CONFIRMED
from broadcaster.store.records import AlertRecord
from broadcaster.templates.catalogue import Template
from broadcaster.templates.variables import example_inputs


async def me(request: web.Request) -> web.Response:
    user = current_user(request)
    return json_response({"name": user.name, "role": user.role})


async def templates(request: web.Request) -> web.Response:
    catalogue = request.app[SERVICE].app.catalogue
    return json_response([template_summary(catalogue.get(i)) for i in catalogue.ids()])


async def template(request: web.Request) -> web.Response:
    """As ``templates show ID --json``: examples as they would be used now, and the sha256 an approver reviews."""
    service = request.app[SERVICE]
    template_id = request.match_info["template_id"]
    try:
        found = service.app.catalogue.get(template_id)
    except InputError:
        raise ApiError(404, "not_found", f"no template {template_id!r}") from None
    examples = example_inputs(found, service.clock.now(), service.config.timezone)
    return json_response(template_detail(found, examples))


async def gazetteer(request: web.Request) -> web.Response:
    return json_response(gazetteer_list(request.app[SERVICE].app.catalogue.gazetteer))


async def channels(request: web.Request) -> web.Response:
    return json_response([channel_summary(c) for c in request.app[SERVICE].config.channels])


async def preview_plan(request: web.Request) -> tuple[Template, Plan]:
    """The plan a preview body asks for (``POST /api/preview`` and its cards): nothing stored, nothing sent."""
    service = request.app[SERVICE]
    app = service.app
    body = parse_fire(await read_json(request), default_mode="dry-run")
    try:
        template = app.catalogue.get(body.template)
    except InputError as exc:
        raise input_error(exc, field="template") from None
    try:
        now = service.clock.now()
        inputs = body.inputs(template, now, service.config.timezone)
        plan = await count_phones(await plan_alert(app.config, app.catalogue, template.id, inputs, mode=body.mode,
                                                   now=now, areas=body.areas, selection=body.selection,
                                                   require_approval=False))
    except InputError as exc:
        raise input_error(exc) from None
    return template, plan


async def preview(request: web.Request) -> web.Response:
    template, plan = await preview_plan(request)
    return json_response({"template": template.id, "approved": template.approved, "two_person": template.two_person,
                          "messages": [row.as_json() for row in plan.rows], "sms": plan.sms_total.as_json()})


async def alerts(request: web.Request) -> web.Response:
    """Recent alerts, newest first, with two-person fires still waiting (or never confirmed)."""
    service = request.app[SERVICE]
    limit = ALERTS_LIMIT.read(request)
    modes = read_modes(request)
    now = service.clock.now()
    items: list[tuple[float, dict[str, Any]]] = []
    for alert in await service.app.store.alerts.recent(limit, modes):
        items.append((alert.sent_at, await _alert_json(service, alert)))
    for pending in await service.app.store.pending.recent(limit, modes):
        if pending.state != CONFIRMED:
            items.append((pending.requested_at, pending_summary(service.config, pending,
                                                                state=pending.state_at(now))))
    items.sort(key=lambda item: item[0], reverse=True)
    return json_response([item for _, item in items[:limit]])


async def alert(request: web.Request) -> web.Response:
    """One alert with its counts and deliveries (``?limit=N&offset=M`` pages the deliveries)."""
    service = request.app[SERVICE]
    alert_id = request.match_info["alert_id"]
    found = await service.app.store.alerts.find(alert_id)
    if found is None:
        pending = await service.app.store.pending.get(alert_id)
        if pending is None:
            raise ApiError(404, "not_found", f"no alert with id {alert_id!r}")
        now = service.clock.now()
        view = pending_summary(service.config, pending, state=pending.state_at(now))
        # What the second officer is asked to confirm: the request as stored, and what it would send if
        # confirmed now (every channel's text, the audience, the cost), planned as the confirmation plans it.
        held: dict[str, Any] = {"request": pending.request, "deliveries": []}
        if view["state"] == AWAITING:
            try:
                plan = await count_phones(await plan_held(service.app, alert_id, now=now))
            except InputError as exc:
                held["preview_error"] = str(exc)
            else:
                held["preview"] = held_preview(plan)
        return json_response({**view, **held})
    view = await _alert_json(service, found)
    receipts = await service.app.store.receipts.latest(alert_id)
    limit, offset = PAGE_LIMIT.read(request), PAGE_OFFSET.read(request)
    total = await service.app.store.alerts.count(alert_id)
    page = await service.app.store.alerts.deliveries(alert_id, limit=limit or None, offset=offset)
    view["deliveries"] = [delivery(d, receipts.get(d.provider_id or "")) for d in page]
    view["deliveries_total"] = total
    return json_response(view)


async def log(request: web.Request) -> web.Response:
    """Every attempt, as ``broadcaster log --json`` lines (``?limit=N&offset=M`` to page)."""
    service = request.app[SERVICE]
    alert_id = request.match_info["alert_id"]
    alert = await service.app.store.alerts.find(alert_id)
    if alert is None:
        if await service.app.store.pending.get(alert_id) is not None:
            return json_response([])
        raise ApiError(404, "not_found", f"no alert with id {alert_id!r}")
    limit, offset = PAGE_LIMIT.read(request), PAGE_OFFSET.read(request)
    lines: list[dict[str, Any]] = []
    n = 0
    async for attempt in service.app.store.alerts.attempts(alert_id):
        n += 1
        if n <= offset:
            continue
        if limit and len(lines) >= limit:
            break
        lines.append({**attempt.as_json(), "mode": str(alert.mode)})  # a dry-run's "sent" is as stored
    return json_response(lines)


async def _alert_json(service: Service, alert: AlertRecord) -> dict[str, Any]:
    counts = await service.app.store.receipts.counts(alert.id)
    busy = service.hub.running(alert.id) or any(
        state in OPEN_STATES for per in counts.values() for state in per
    )
    pending = await service.app.store.pending.get(alert.id)
    return alert_summary(service.config, alert, state="sending" if busy else "done", counts=counts,
                         confirmed_by=pending.confirmed_by if pending else None)


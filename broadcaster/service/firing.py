"""The handlers that send: fire, confirm, update, cancel; and template approval.

Order of checks, so that a refused request never sends, and a malformed or
forbidden one never costs a rate slot: body → template → role (403) → per-user
rate (429) → plan (400) → typed confirmation (400). A live fire of a
``two_person`` template is then parked for a second officer; anything else is
committed and delivered at once.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from aiohttp import web

from broadcaster.engine.lifecycle import CANCEL_TEMPLATE, plan_cancel, plan_update
from broadcaster.engine.outbox import Plan, plan_alert
from broadcaster.engine.ratelimit import RateLimiter
from broadcaster.errors import ConfigError, InputError
from broadcaster.service.auth import Forbidden, User, check_confirm, check_fire, require
from broadcaster.service.bodies import (
    APPROVE_FIELDS,
    CANCEL_FIELDS,
    UPDATE_FIELDS,
    bad,
    known_fields,
    parse_confirm,
    parse_fire,
    parse_mode,
    parse_variables,
    require_typed_confirmation,
)
from broadcaster.service.http import ApiError, current_user, input_error, json_response, read_json
from broadcaster.service.pending import AWAITING, NOT_CONFIRMED
from broadcaster.service.state import SERVICE, Service
from broadcaster.store.base import AlertRecord
from broadcaster.templates.catalogue import Template, approve
from broadcaster.timefmt import iso_seconds


async def fire(request: web.Request) -> web.Response:
    service, user = request.app[SERVICE], current_user(request)
    body = parse_fire(await read_json(request))
    template = _template(service, body.template)
    _check_fire(service, user, body.mode, template)
    throttle(service, user, request.path)
    doc = {"kind": "fire", "template": template.id, "inputs": body.inputs(template), "areas": list(body.areas),
           "selection": body.selection, "mode": body.mode}
    plan = plan_request(service, doc, created_by=user.name)
    require_typed_confirmation(body.mode, body.confirm, plan.template.id)
    return await launch(service, user, plan, doc, action="fire")


async def update(request: web.Request) -> web.Response:
    service, user = request.app[SERVICE], current_user(request)
    body = await read_json(request)
    known_fields(body, UPDATE_FIELDS)
    mode, confirm, overrides = parse_mode(body), parse_confirm(body), parse_variables(body.get("variables"))
    original = _original(service, request.match_info["alert_id"])
    _check_fire(service, user, mode, _template(service, original.template))
    throttle(service, user, request.path)
    doc = {"kind": "update", "original": original.id, "overrides": overrides, "mode": mode}
    plan = plan_request(service, doc, created_by=user.name)
    require_typed_confirmation(mode, confirm, plan.template.id)
    return await launch(service, user, plan, doc, action="update")


async def cancel(request: web.Request) -> web.Response:
    service, user = request.app[SERVICE], current_user(request)
    body = await read_json(request, optional=True)
    known_fields(body, CANCEL_FIELDS)
    mode, confirm = parse_mode(body), parse_confirm(body)
    original = _original(service, request.match_info["alert_id"])
    _check_fire(service, user, mode, _template(service, CANCEL_TEMPLATE))
    throttle(service, user, request.path)
    doc = {"kind": "cancel", "original": original.id, "mode": mode}
    plan = plan_request(service, doc, created_by=user.name)
    require_typed_confirmation(mode, confirm, plan.template.id)
    return await launch(service, user, plan, doc, action="cancel")


async def confirm(request: web.Request) -> web.Response:
    """The second officer: a different user with role officer or approver, inside the window."""
    service, user = request.app[SERVICE], current_user(request)
    alert_id = request.match_info["alert_id"]
    pending = service.pending.get(alert_id)
    if pending is None:
        _original(service, alert_id)  # 404 when there is no such alert at all
        raise ApiError(409, "conflict", f"alert {alert_id} is not awaiting confirmation")
    try:
        check_confirm(user)
    except Forbidden:
        service.record(user.name, "forbidden", action="confirm", alert_id=alert_id, role=user.role)
        raise
    if pending.requested_by == user.name:
        raise ApiError(409, "conflict", f"{user.name} fired alert {alert_id}; a different officer must confirm it")
    throttle(service, user, request.path)
    now = service.clock.now()
    state = pending.state_at(now)
    if state == NOT_CONFIRMED:
        if service.pending.close_expired(alert_id, now=now):
            service.record(user.name, "confirmation_expired", alert_id=alert_id, requested_by=pending.requested_by)
        raise ApiError(409, "conflict", f"the confirmation window of alert {alert_id} closed at "
                       f"{iso_seconds(pending.confirm_by, service.config.timezone)}; fire it again")
    if state != AWAITING:
        raise ApiError(409, "conflict", f"alert {alert_id} is already {state}")
    plan = plan_request(service, pending.request, created_by=pending.requested_by, alert_id=alert_id)
    if not service.pending.claim(alert_id, user.name, now=now):
        raise ApiError(409, "conflict", f"alert {alert_id} was confirmed by someone else, or its window closed")
    try:
        await _start(service, plan)
    except BaseException:
        service.pending.release(alert_id)
        raise
    service.record(user.name, "confirm", alert_id=alert_id, requested_by=pending.requested_by,
                   template=plan.template.id, mode=plan.alert.mode)
    service.metrics.fires.labels(mode=plan.alert.mode, state="sending").inc()
    return json_response({"alert_id": alert_id, "state": "sending"}, 202)


async def approve_template(request: web.Request) -> web.Response:
    """Approve a template's current content. ``sha256`` must be the content the approver reviewed."""
    service, user = request.app[SERVICE], current_user(request)
    template_id = request.match_info["template_id"]
    try:
        require(user, "approver", "approving a template")
    except Forbidden:
        service.record(user.name, "forbidden", action="approve", template=template_id, role=user.role)
        raise
    body = await read_json(request)
    known_fields(body, APPROVE_FIELDS)
    template = _template(service, template_id, status=404)
    reviewed = body.get("sha256")
    if not isinstance(reviewed, str) or not reviewed:
        raise bad("sha256", "the sha256 of the content you reviewed (from GET /api/templates/{id}) is required")
    if reviewed != template.content_hash:
        raise ApiError(409, "conflict", f"template {template_id} changed since you reviewed it "
                       f"(now sha256 {template.content_hash}); review it again")
    when = datetime.fromtimestamp(service.clock.now(), service.config.timezone)
    digest = approve(service.app.catalogue.path(template_id), user.name, when)
    service.record(user.name, "approval", template=template_id, sha256=digest)
    return json_response({"id": template_id, "approved": True, "by": user.name,
                          "at": when.isoformat(timespec="seconds"), "sha256": digest})


# --- shared steps ----------------------------------------------------------------------


def plan_request(service: Service, doc: dict[str, Any], *, created_by: str, alert_id: str | None = None) -> Plan:
    """Plan a fire, update or cancel from its stored request; InputError → 400 naming the field."""
    app, now = service.app, service.clock.now()
    mode = str(doc["mode"])
    try:
        if doc["kind"] == "fire":
            plan = plan_alert(app.config, app.catalogue, doc["template"], doc["inputs"], mode=mode, now=now,
                              areas=tuple(doc["areas"]), selection=doc["selection"], store=app.store)
        elif doc["kind"] == "update":
            plan = plan_update(app, doc["original"], doc["overrides"], mode=mode, now=now)
        else:
            plan = plan_cancel(app, doc["original"], mode=mode, now=now)
    except InputError as exc:
        raise input_error(exc) from None
    # A confirmed two-person fire keeps the id its first officer was given; request bodies (the
    # webhook's JSON) are built from the alert as committed, so they name it too.
    plan.alert = dataclasses.replace(plan.alert, created_by=created_by, id=alert_id or plan.alert.id)
    return plan


async def launch(service: Service, user: User, plan: Plan, doc: dict[str, Any], *, action: str) -> web.Response:
    alert = plan.alert
    detail = {"alert_id": alert.id, "template": plan.template.id, "mode": alert.mode, "msg_type": alert.msg_type,
              "references": alert.references, "areas": list(alert.areas), "channels": list(alert.channels)}
    if alert.mode == "live" and plan.template.two_person:
        pending = service.pending.add(alert.id, plan.template.id, alert.mode, doc, user.name,
                                      now=service.clock.now(), window_s=service.limits.confirm_window_s)
        service.record(user.name, action, **detail, state=AWAITING)
        service.metrics.fires.labels(mode=alert.mode, state=AWAITING).inc()
        return json_response({"alert_id": alert.id, "state": AWAITING,
                              "confirm_by": iso_seconds(pending.confirm_by, service.config.timezone)}, 202)
    await _start(service, plan)
    service.record(user.name, action, **detail, state="sending")
    service.metrics.fires.labels(mode=alert.mode, state="sending").inc()
    return json_response({"alert_id": alert.id, "state": "sending"}, 202)


async def _start(service: Service, plan: Plan) -> None:
    alert = plan.alert
    if alert.msg_type == "Cancel" and alert.references is not None:
        original = service.app.store.alert(alert.references)
        # Withdraw first, so no queued copy of a false alert leaves after its correction; a dry-run
        # rehearsal of a cancel never touches a real alert's deliveries.
        if alert.mode != "dry-run" or original.mode == "dry-run":
            service.app.store.withdraw(original.id, f"withdrawn by cancel {alert.id}")
    try:
        await service.runs.start(plan, alert.mode)
    except ConfigError:
        raise  # the server's own configuration (a missing secret): 503, not the caller's fault
    except InputError as exc:
        raise input_error(exc) from None


def throttle(service: Service, user: User, path: str) -> None:
    """The per-user firing limit (the project's one RateLimiter, non-blocking). A burst is audited once."""
    limiter = service.fire_limiters.get(user.name)
    if limiter is None:
        limits = service.limits
        limiter = RateLimiter(limits.fire_rate_per_second, service.clock, burst=limits.fire_burst)
        service.fire_limiters[user.name] = limiter
    if limiter.try_acquire():
        service.throttled.discard(user.name)
        return
    if user.name not in service.throttled:
        service.throttled.add(user.name)
        service.record(user.name, "rate_limited", path=path, rate_per_second=limiter.rate_per_second)
    retry_after = max(1, round(limiter.min_interval_s))
    raise ApiError(429, "rate_limited", f"{user.name} is firing too fast; try again in {retry_after} s",
                   headers={"Retry-After": str(retry_after)})


def _check_fire(service: Service, user: User, mode: str, template: Template) -> None:
    try:
        check_fire(user, mode, template)
    except Forbidden:
        service.record(user.name, "forbidden", action="fire", template=template.id, mode=mode, role=user.role)
        raise


def _template(service: Service, template_id: str, *, status: int = 400) -> Template:
    try:
        return service.app.catalogue.get(template_id)
    except InputError as exc:
        if status == 404:
            raise ApiError(404, "not_found", f"no template {template_id!r}") from None
        raise input_error(exc, field="template") from None


def _original(service: Service, alert_id: str) -> AlertRecord:
    try:
        return service.app.store.alert(alert_id)
    except InputError:
        raise ApiError(404, "not_found", f"no alert with id {alert_id!r}") from None

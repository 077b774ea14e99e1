"""The handlers that send: fire, confirm, update, cancel, all-clear; and template approval.

They parse and check who may, then hand over to the application layer
(:mod:`broadcaster.app.fire`), which decides every rule (approval, modes,
exercise channels, the two-person hold, withdraw-before-cancel) exactly as it
does for the CLI and the runbook scheduler. Order of checks, so that a refused
request never sends, and a malformed or forbidden one never costs a rate slot:
body → template → role (403) → per-user rate (429) → plan (400) → typed
confirmation (400) → launch.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from broadcaster.app.approve import approve_template as approve
from broadcaster.app.fire import Going, Held, Request, launch, plan_request
from broadcaster.app.fire import confirm as confirm_fire
from broadcaster.app.follow_up import CANCEL_TEMPLATES, all_clear_template
from broadcaster.app.users import User, check_confirm, check_fire, require
from broadcaster.engine.outbox import count_phones
from broadcaster.engine.ratelimit import RateLimiter
from broadcaster.errors import ConfigError, Conflict, Forbidden, InputError
from broadcaster.service.bodies import (
    ALL_CLEAR_FIELDS,
    APPROVE_FIELDS,
    CANCEL_FIELDS,
    CONFIRM_FIELDS,
    FOLLOW_UP_ACTIONS,
    FOLLOW_UP_PREVIEW_FIELDS,
    UPDATE_FIELDS,
    bad,
    known_fields,
    parse_confirm,
    parse_fire,
    parse_mode,
    parse_reason,
    parse_variables,
    require_typed_confirmation,
)
from broadcaster.service.http import ApiError, current_user, input_error, json_response, read_json
from broadcaster.service.state import SERVICE, Service
from broadcaster.states import Mode
from broadcaster.store.records import AlertRecord
from broadcaster.templates.catalogue import Template
from broadcaster.timefmt import iso_seconds


async def fire(request: web.Request) -> web.Response:
    service, user = request.app[SERVICE], current_user(request)
    body = parse_fire(await read_json(request))
    template = _template(service, body.template)
    await _check_fire(service, user, body.mode, template)
    await throttle(service, user, request.path)
    inputs = body.inputs(template, service.clock.now(), service.config.timezone)
    asked = Request("fire", body.mode, template=template.id, inputs=inputs, areas=body.areas,
                    selection=body.selection)
    return await _send(service, user, asked, body.confirm)


async def update(request: web.Request) -> web.Response:
    service, user = request.app[SERVICE], current_user(request)
    body = await read_json(request)
    known_fields(body, UPDATE_FIELDS)
    mode, confirm, overrides = parse_mode(body), parse_confirm(body), parse_variables(body.get("variables"))
    original = await _original(service, request.match_info["alert_id"])
    await _check_fire(service, user, mode, _template(service, original.template))
    await throttle(service, user, request.path)
    return await _send(service, user, Request("update", mode, original=original.id, overrides=overrides), confirm)


async def cancel(request: web.Request) -> web.Response:
    service, user = request.app[SERVICE], current_user(request)
    body = await read_json(request, optional=True)
    known_fields(body, CANCEL_FIELDS)
    mode, confirm, reason = parse_mode(body), parse_confirm(body), parse_reason(body)
    original = await _original(service, request.match_info["alert_id"])
    await _check_fire(service, user, mode, _template(service, CANCEL_TEMPLATES[reason]))
    await throttle(service, user, request.path)
    return await _send(service, user, Request("cancel", mode, original=original.id, reason=reason), confirm)


async def all_clear(request: web.Request) -> web.Response:
    """The all-clear of an alert, to its audience: road_reopened after a road closure, else all_clear."""
    service, user = request.app[SERVICE], current_user(request)
    body = await read_json(request, optional=True)
    known_fields(body, ALL_CLEAR_FIELDS)
    mode, confirm, overrides = parse_mode(body), parse_confirm(body), parse_variables(body.get("variables"))
    original = await _original(service, request.match_info["alert_id"])
    try:
        template_id = all_clear_template(original)
    except InputError as exc:
        raise input_error(exc) from None
    await _check_fire(service, user, mode, _template(service, template_id))
    await throttle(service, user, request.path)
    return await _send(service, user, Request("all_clear", mode, original=original.id, overrides=overrides),
                       confirm)


async def preview_follow_up(request: web.Request) -> web.Response:
    """What an update, cancel or all-clear of this alert would send, on every channel: nothing stored or sent."""
    service = request.app[SERVICE]
    body = await read_json(request)
    known_fields(body, FOLLOW_UP_PREVIEW_FIELDS)
    action = body.get("action")
    if action not in FOLLOW_UP_ACTIONS:
        raise bad("action", f"must be one of {', '.join(FOLLOW_UP_ACTIONS)}")
    mode, overrides = parse_mode(body, default="dry-run"), parse_variables(body.get("variables"))
    if action == "cancel" and overrides:
        raise bad("variables", "a cancel takes no variables: its text is approved as it is")
    if action != "cancel" and "reason" in body:
        raise bad("reason", "only a cancel has a reason")
    original = await _original(service, request.match_info["alert_id"])
    asked = Request(action, mode, original=original.id, overrides=overrides, reason=parse_reason(body))
    try:
        plan = await count_phones(await plan_request(service.app, asked, now=service.clock.now(), created_by="preview"))
    except ConfigError:
        raise
    except InputError as exc:
        raise input_error(exc) from None
    alert = plan.alert
    return json_response({"template": plan.template.id, "approved": plan.template.approved, "action": action,
                          "msg_type": str(alert.msg_type), "references": alert.references, "areas": list(alert.areas),
                          "skipped": plan.skipped, "notes": plan.notes,
                          "messages": [row.as_json() for row in plan.rows], "sms": plan.sms_total.as_json()})


async def _send(service: Service, user: User, asked: Request, confirm: str | None) -> web.Response:
    try:
        plan = await plan_request(service.app, asked, now=service.clock.now(), created_by=user.name)
    except ConfigError:
        raise  # the server's own fault (a clock off the database's): 503, nothing sent
    except InputError as exc:
        raise input_error(exc) from None
    require_typed_confirmation(asked.mode, confirm, plan.template.id)
    decision = await launch(service.app, plan, asked, actor=user.name, now=service.clock.now(),
                            window_s=service.limits.confirm_window_s)
    if isinstance(decision, Held):
        service.metrics.fires.labels(mode=plan.alert.mode, state="awaiting_confirmation").inc()
        return json_response({"alert_id": decision.alert_id, "state": "awaiting_confirmation",
                              "confirm_by": iso_seconds(decision.confirm_by, service.config.timezone)}, 202)
    await _start(service, decision)
    service.metrics.fires.labels(mode=plan.alert.mode, state="sending").inc()
    answer: dict[str, object] = {"alert_id": plan.alert.id, "state": "sending"}
    if plan.skipped:  # a follow-up: the original's channels today's config rules out, and why
        answer["skipped"] = plan.skipped
    if plan.notes:  # e.g. a follow-up marker a WhatsApp template cannot carry
        answer["notes"] = plan.notes
    return json_response(answer, 202)


async def confirm(request: web.Request) -> web.Response:
    """The second officer: a different user with role officer or approver, inside the window."""
    service, user = request.app[SERVICE], current_user(request)
    alert_id = request.match_info["alert_id"]
    pending = await service.app.store.pending.get(alert_id)
    if pending is None:
        await _original(service, alert_id)  # 404 when there is no such alert at all
    try:
        check_confirm(user)
    except Forbidden:
        await service.record(user.name, "forbidden", action="confirm", alert_id=alert_id, role=user.role)
        raise
    body = await read_json(request, optional=True)
    known_fields(body, CONFIRM_FIELDS)
    if pending is not None:  # a live release is typed, as a live fire is: one click never sends
        require_typed_confirmation(pending.mode, parse_confirm(body), pending.template)
    await throttle(service, user, request.path)
    going = await confirm_fire(service.app, alert_id, user=user, now=service.clock.now(),
                               start=lambda cleared: _start(service, cleared))
    service.metrics.fires.labels(mode=going.plan.alert.mode, state="sending").inc()
    return json_response({"alert_id": alert_id, "state": "sending"}, 202)


async def approve_template(request: web.Request) -> web.Response:
    """Approve exactly the content the approver reviewed: ``sha256`` from ``GET /api/templates/{id}``.

    The file is read once, compared and rewritten atomically (:mod:`broadcaster.app.approve`):
    a file changed since (or while) is a 409 and nothing is written.
    """
    service, user = request.app[SERVICE], current_user(request)
    template_id = request.match_info["template_id"]
    try:
        require(user, "approver", "approving a template")
    except Forbidden:
        await service.record(user.name, "forbidden", action="approve", template=template_id, role=user.role)
        raise
    body = await read_json(request)
    known_fields(body, APPROVE_FIELDS)
    _template_path(service, template_id)
    reviewed = body.get("sha256")
    if not isinstance(reviewed, str) or not reviewed:
        raise bad("sha256", "the sha256 of the content you reviewed (from GET /api/templates/{id}) is required")
    when = datetime.fromtimestamp(service.clock.now(), service.config.timezone)
    try:
        digest = await approve(service.app, template_id, reviewed_sha256=reviewed, by=user.name, when=when)
    except Conflict:
        raise  # 409: the file is not what was reviewed
    except InputError as exc:
        raise input_error(exc, field="template") from None
    await service.record(user.name, "approval", template=template_id, sha256=digest)
    return json_response({"id": template_id, "approved": True, "by": user.name,
                          "at": when.isoformat(timespec="seconds"), "sha256": digest})


# --- shared steps ----------------------------------------------------------------------


async def _start(service: Service, going: Going) -> None:
    try:
        await service.runs.start(going.plan)
    except ConfigError:
        raise  # the server's own configuration (a missing secret): 503, not the caller's fault
    except InputError as exc:
        raise input_error(exc) from None


async def throttle(service: Service, user: User, path: str) -> None:
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
        await service.record(user.name, "rate_limited", path=path, rate_per_second=limiter.rate_per_second)
    retry_after = max(1, round(limiter.min_interval_s))
    raise ApiError(429, "rate_limited", f"{user.name} is firing too fast; try again in {retry_after} s",
                   headers={"Retry-After": str(retry_after)})


async def _check_fire(service: Service, user: User, mode: Mode, template: Template) -> None:
    try:
        check_fire(user, mode, template)
    except Forbidden:
        await service.record(user.name, "forbidden", action="fire", template=template.id, mode=str(mode),
                             role=user.role)
        raise


def _template_path(service: Service, template_id: str) -> None:
    """404 for a template that does not exist."""
    try:
        service.app.catalogue.path_of(template_id)
    except InputError:
        raise ApiError(404, "not_found", f"no template {template_id!r}") from None


def _template(service: Service, template_id: str) -> Template:
    try:
        return service.app.catalogue.get(template_id)
    except InputError as exc:
        raise input_error(exc, field="template") from None


async def _original(service: Service, alert_id: str) -> AlertRecord:
    found = await service.app.store.alerts.find(alert_id)
    if found is None:
        raise ApiError(404, "not_found", f"no alert with id {alert_id!r}")
    return found

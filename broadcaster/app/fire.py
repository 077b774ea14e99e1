"""Fire, update, cancel and confirm: every rule about sending is decided here, once.

Whichever face asks (the CLI, the HTTP API and console, the runbook
scheduler), a send goes through the same three calls:

1. :func:`plan_request` checks and renders the request (approval, variables,
   areas, selection, exercise channels, lengths) and raises an InputError naming
   what is wrong, with nothing stored;
2. :func:`launch` decides what happens to the plan: a live fire of a
   ``two_person`` template is **held** for a different officer (only the request
   is stored, never the alert); anything else **goes**, a cancel's commit
   withdrawing whatever of its original has not gone out. Either is audited;
3. :func:`run_plan` commits the outbox and delivers (or :func:`queue_plan`
   commits and leaves delivery to the workers).

:func:`confirm` is the second officer: it re-plans the held request under the
id the first officer was given (so an approval that went stale meanwhile still
refuses it) and returns it ready to run. Who may do what is decided by the
role checks of :mod:`broadcaster.app.users`: :func:`check_request` before a
request is launched (every face calls it), :func:`confirm` by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from broadcaster.anchors import plan_sha256, seal_finished
from broadcaster.app.context import App
from broadcaster.app.follow_up import CANCEL_TEMPLATES, all_clear_template, plan_all_clear, plan_cancel, plan_update
from broadcaster.app.users import User, check_confirm, check_fire
from broadcaster.audit import AuditEntry
from broadcaster.clock import Clock
from broadcaster.engine.dispatcher import OutcomeObserver, ProgressHook, Tuning
from broadcaster.engine.node import DEAD_AFTER_S, Node
from broadcaster.engine.outbox import Plan, commit, plan_alert
from broadcaster.engine.retry import RetryPolicy
from broadcaster.engine.runner import deliver
from broadcaster.errors import ConfigError, Conflict, InputError, StoreError
from broadcaster.states import CancelReason, Mode, MsgType, StepState
from broadcaster.store.pending import AWAITING, NOT_CONFIRMED, PendingFire
from broadcaster.store.records import NodeRow
from broadcaster.templates.variables import Inputs
from broadcaster.timefmt import iso_seconds

log = logging.getLogger("broadcaster.fire")

CONFIRM_WINDOW_S: Final = 600.0  # how long a held two-person fire waits for its second officer
ACTIONS: Final = {MsgType.ALERT: "fire", MsgType.UPDATE: "update", MsgType.CANCEL: "cancel"}

Kind = Literal["fire", "update", "cancel", "all_clear"]


@dataclass(frozen=True)
class Request:
    """What an officer asked for, as stored while a two-person fire waits (``pending_fires.request``)."""

    kind: Kind
    mode: Mode
    template: str | None = None  # fire
    inputs: Inputs = field(default_factory=dict)  # fire: every variable
    areas: tuple[str, ...] = ()  # fire
    selection: str = "all"  # fire
    original: str | None = None  # update, cancel, all_clear
    overrides: Inputs = field(default_factory=dict)  # update, all_clear: the variables that changed (or were set)
    reason: CancelReason = CancelReason.ERROR  # cancel: which approved text
    reminder: int | None = None  # update: the n-th repeat of the original (fire --every, a runbook's every)

    def doc(self) -> dict[str, Any]:
        base: dict[str, Any] = {"kind": self.kind, "mode": str(self.mode)}
        if self.kind == "fire":
            return {**base, "template": self.template, "inputs": self.inputs, "areas": list(self.areas),
                    "selection": self.selection}
        if self.kind == "update":
            return {**base, "original": self.original, "overrides": self.overrides,
                    **({"reminder": self.reminder} if self.reminder is not None else {})}
        if self.kind == "all_clear":
            return {**base, "original": self.original, "overrides": self.overrides}
        return {**base, "original": self.original, "reason": str(self.reason)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Request:
        return cls(kind=doc["kind"], mode=Mode(doc["mode"]), template=doc.get("template"),
                   inputs=doc.get("inputs", {}), areas=tuple(doc.get("areas", ())),
                   selection=doc.get("selection", "all"), original=doc.get("original"),
                   overrides=doc.get("overrides", {}), reason=CancelReason(doc.get("reason", CancelReason.ERROR)),
                   reminder=doc.get("reminder"))


@dataclass(frozen=True)
class Held:
    """A live two-person fire waiting for a second officer: nothing is committed yet."""

    alert_id: str
    confirm_by: float


@dataclass(frozen=True)
class Going:
    """A plan cleared to go out (a cancel's commit withdraws what its original has not sent yet)."""

    plan: Plan


async def plan_request(app: App, request: Request, *, now: float, created_by: str, alert_id: str | None = None,
                       require_approval: bool = True) -> Plan:
    """Check and render what ``request`` would send; raises an InputError (nothing stored) on any problem."""
    await check_clock(app)
    if request.kind == "fire":
        if request.template is None:
            raise InputError("a fire needs a template")
        return await plan_alert(app.config, app.catalogue, request.template, request.inputs, mode=request.mode,
                                now=now, areas=request.areas, selection=request.selection,
                                require_approval=require_approval, alert_id=alert_id, created_by=created_by)
    if request.original is None:
        raise InputError(f"an {request.kind} needs the alert it follows up")
    if request.kind == "update":
        return await plan_update(app, request.original, request.overrides, mode=request.mode, now=now,
                                 alert_id=alert_id, created_by=created_by, reminder=request.reminder)
    if request.kind == "all_clear":
        return await plan_all_clear(app, request.original, request.overrides, mode=request.mode, now=now,
                                    alert_id=alert_id, created_by=created_by)
    return await plan_cancel(app, request.original, mode=request.mode, now=now, alert_id=alert_id,
                             created_by=created_by, reason=request.reason)


async def check_request(app: App, user: User, request: Request) -> None:
    """May ``user`` send ``request``? The role rule of :func:`~broadcaster.app.users.check_fire`, against the
    template the request would use (a follow-up's original's, the cancel template); raises :class:`Forbidden`."""
    if request.kind == "fire":
        if request.template is None:
            raise InputError("a fire needs a template")
        template_id = request.template
    elif request.kind == "cancel":
        template_id = CANCEL_TEMPLATES[CancelReason(request.reason)]
    else:
        if request.original is None:
            raise InputError(f"an {request.kind} needs the alert it follows up")
        original = await app.store.alerts.get(request.original)
        template_id = all_clear_template(original) if request.kind == "all_clear" else original.template
    check_fire(user, request.mode, app.catalogue.get(template_id))


async def check_clock(app: App) -> None:
    """Refuse to plan while this host's clock and the database's disagree by more than ``max_clock_skew_s``.

    Every time an alert states (sent, expires, "until", the time rules) comes from
    this host's clock; a host days slow would send alerts already expired. The
    host's wall clock is compared, not the plan's ``now`` (a rehearsal's is virtual).
    A ConfigError: the installation's fault, not the officer's (HTTP 503, exit 2).
    """
    database = await app.store.nodes.now()
    skew = time.time() - database
    if abs(skew) > app.config.max_clock_skew_s:
        tz = app.config.timezone
        raise ConfigError(
            f"this host's clock ({iso_seconds(database + skew, tz)}) is {abs(skew):.0f} s "
            f"{'ahead of' if skew > 0 else 'behind'} the database's ({iso_seconds(database, tz)}), more than "
            f"max_clock_skew_s = {app.config.max_clock_skew_s:g}; nothing was sent. Set the clock right (NTP) and "
            "fire again", where="host clock")


async def launch(app: App, plan: Plan, request: Request, *, actor: str, now: float,
                 window_s: float = CONFIRM_WINDOW_S) -> Held | Going:
    """Hold a live two-person fire for a second officer, or clear the plan to go (audited either way)."""
    alert = plan.alert
    detail: dict[str, Any] = {
        "alert_id": alert.id, "template": plan.template.id, "mode": str(alert.mode), "msg_type": str(alert.msg_type),
        "references": alert.references, "areas": list(alert.areas), "channels": list(alert.channels)}
    if plan.skipped:  # a follow-up: the original's channels today's config rules out, and why
        detail["skipped"] = dict(plan.skipped)
    action = ACTIONS[alert.msg_type]
    if alert.mode == Mode.LIVE and plan.template.two_person:
        pending = await app.store.pending.add(alert.id, plan.template.id, str(alert.mode), request.doc(), actor,
                                              now=now, window_s=window_s)
        await app.audit(actor, action, {**detail, "state": AWAITING}, now=now)
        return Held(alert.id, pending.confirm_by)
    plan.withdraws = await original_to_withdraw(app, plan)
    # Audited once committed (run_plan, queue_plan): a fire whose commit failed sent nothing.
    plan.audit = AuditEntry(actor, action, {**detail, "state": "sending"}, now)
    return Going(plan)


async def original_to_withdraw(app: App, plan: Plan) -> str | None:
    """For a cancel: the original whose undelivered deliveries its commit withdraws (in the same transaction).

    Only a cancel in the original's own mode withdraws anything: a dry-run
    rehearsal of cancelling a live alert must never stop that live alert.
    """
    alert = plan.alert
    if alert.msg_type != MsgType.CANCEL or alert.references is None:
        return None
    original = await app.store.alerts.get(alert.references)
    return original.id if original.mode == alert.mode else None


async def held_plan(app: App, alert_id: str, user: User, *, now: float) -> tuple[PendingFire, Plan]:
    """What confirming ``alert_id`` would send, checked as :func:`confirm` checks it (the same refusals).

    A face shows it to the second officer before they confirm; nothing is stored.
    """
    check_confirm(user)
    pending = await app.store.pending.get(alert_id)
    if pending is None:
        if await app.store.alerts.find(alert_id) is None:
            raise InputError(f"no alert with id {alert_id!r}")
        raise Conflict(f"alert {alert_id} is not awaiting confirmation")
    if pending.requested_by == user.name:
        raise Conflict(f"{user.name} fired alert {alert_id}; a different officer must confirm it")
    state = pending.state_at(now)
    if state == NOT_CONFIRMED:
        if await app.store.pending.close_expired(alert_id, now=now):
            await app.audit(user.name, "confirmation_expired", {"alert_id": alert_id,
                                                                "requested_by": pending.requested_by}, now=now)
        for row in await app.store.runs.held(alert_id):
            await app.store.runs.move_step(row.run_id, row.step_id, row.occurrence, from_states=(StepState.HELD,),
                                           to_state=StepState.FAILED,
                                           detail="not confirmed by a second officer in time: nothing was sent")
        raise Conflict(f"the confirmation window of alert {alert_id} closed at "
                       f"{iso_seconds(pending.confirm_by, app.config.timezone)}; fire it again")
    if state != AWAITING:
        raise Conflict(f"alert {alert_id} is already {state}")
    return pending, await plan_held(app, alert_id, now=now)


async def confirm(app: App, alert_id: str, *, user: User, now: float,
                  start: Callable[[Going], Awaitable[None]]) -> Going:
    """The second officer releases a held fire; raises :class:`Conflict` when that cannot be.

    ``user`` must be an officer or approver (:func:`~broadcaster.app.users.check_confirm`,
    :class:`Forbidden` otherwise) other than the one who fired, inside the window.
    ``start`` is how the caller runs it (in this process, or in the background);
    it must return once the outbox is committed. If it fails before that, the
    fire goes back to waiting and may be confirmed again.
    """
    actor = user.name
    pending, plan = await held_plan(app, alert_id, user, now=now)
    if not await app.store.pending.claim(alert_id, actor, now=now):
        raise Conflict(f"alert {alert_id} was confirmed by someone else, or its window closed")
    # Audited once committed, by the second officer: this row is the alert's commit anchor.
    plan.audit = AuditEntry(actor, "confirm", {"alert_id": alert_id, "requested_by": pending.requested_by,
                                               "template": plan.template.id, "mode": str(plan.alert.mode)}, now)
    try:
        plan.withdraws = await original_to_withdraw(app, plan)
        going = Going(plan)
        await start(going)
    except BaseException:
        await app.store.pending.release(alert_id)
        raise
    await step_confirmed(app, alert_id, actor, now)
    return going


async def step_confirmed(app: App, alert_id: str, actor: str, now: float) -> None:
    """A runbook step held for this alert has fired: its run goes on, counting from ``now``."""
    for row in await app.store.runs.held(alert_id):
        await app.store.runs.move_step(row.run_id, row.step_id, row.occurrence, from_states=(StepState.HELD,),
                                       to_state=StepState.FIRED, confirmed_at=now,
                                       detail=f"confirmed by {actor}; alert {alert_id} is going out")


async def plan_held(app: App, alert_id: str, *, now: float) -> Plan:
    """What a held fire would send if confirmed now: its request planned again, as :func:`confirm` does.

    The second officer reviews exactly this (every channel's text, the audience
    and the cost); an approval that went stale since is refused here too.
    """
    pending = await app.store.pending.get(alert_id)
    if pending is None:
        raise InputError(f"no held fire with id {alert_id!r}")
    return await plan_request(app, Request.from_doc(pending.request), now=now, created_by=pending.requested_by,
                              alert_id=alert_id)


async def run_plan(app: App, plan: Plan, *, progress: ProgressHook | None = None,
                   on_commit: Callable[[int, int], None] | None = None, clock: Clock | None = None,
                   observer: OutcomeObserver | None = None, tuning: Tuning | None = None,
                   policy: RetryPolicy | None = None, node: Node | None = None, mode: Mode | None = None) -> None:
    """Commit the plan's outbox and deliver it in this process (a dry-run to recording transports).

    ``mode`` delivers as another mode than the alert's: a runbook preflight checks
    a live plan and delivers it to recording transports only.
    """
    async def committed(created: int, skipped: int) -> None:
        await audit_commit(app, plan, created, skipped)
        if on_commit:
            on_commit(created, skipped)

    # Each channel's fallback opens with it (SMS failover); it is never fired itself, so it has no deliveries yet.
    await deliver(app.store, app.config.with_fallbacks(plan.channels), mode or plan.alert.mode, plan=plan,
                  progress=progress,
                  on_commit=committed, clock=clock, observer=observer, tuning=tuning, policy=policy, node=node,
                  status_callback=app.status_callback)
    await seal_if_finished(app, plan.alert.id)


async def audit_commit(app: App, plan: Plan, created: int, skipped: int) -> None:
    """Append the plan's audit row now that its outbox is committed: its anchor in the chain.

    The row carries ``alert_sha256``, the hash of the alert and its messages as
    committed (:mod:`broadcaster.anchors`). A plan nobody launched (a rehearsal's
    step, a confirmed two-person fire) is written as its creator's ``fire``,
    ``update`` or ``cancel``, so that every committed alert is anchored. The alert
    is already on its way: a database that refuses the row now must not stop it,
    so the failure is logged loudly and delivery goes on (``audit verify`` then
    names the alert as not in the log).
    """
    alert = plan.alert
    entry = plan.audit or AuditEntry(alert.created_by, ACTIONS[alert.msg_type], {
        "alert_id": alert.id, "template": plan.template.id, "mode": str(alert.mode), "msg_type": str(alert.msg_type),
        "references": alert.references, "areas": list(alert.areas), "channels": list(alert.channels),
        "state": "sending"}, time.time())
    detail = {**entry.detail, "deliveries": created, "duplicates_skipped": skipped,
              "alert_sha256": plan_sha256(alert, plan.messages)}
    try:
        await app.audit(entry.actor, entry.action, detail, now=entry.at)
    except StoreError as exc:
        log.error("alert %s is committed and going out, but its audit row could not be written: %s: %s",
                  plan.alert.id, type(exc).__name__, exc)


async def seal_if_finished(app: App, alert_id: str) -> None:
    """Once every delivery of ``alert_id`` is final, anchor their final states in the audit log.

    Held deliveries, or a run that stopped early, leave it to whoever finishes the
    alert (``resume``, ``release``, a worker's sweep). A database that fails now
    loses nothing: the sweep seals it later.
    """
    try:
        await seal_finished(app.store, [alert_id])
    except StoreError as exc:
        log.warning("alert %s: its deliveries could not be sealed in the audit log yet (%s: %s); a worker or "
                    "`broadcaster resume` seals them later", alert_id, type(exc).__name__, exc)


@dataclass(frozen=True)
class Queued:
    created: int
    duplicates: int
    workers: list[NodeRow]


async def queue_plan(app: App, plan: Plan) -> Queued:
    """Commit only: workers on any node claim the deliveries (woken by NOTIFY on PostgreSQL)."""
    if plan.alert.mode == Mode.DRY_RUN:
        raise InputError("a dry-run is never left to workers; it runs here, on this machine", where="--queue")
    created, skipped = await commit(app.store, plan)
    await audit_commit(app, plan, created, skipped)
    workers = [n for n in await app.store.nodes.recent(DEAD_AFTER_S)
               if n.role in ("worker", "serve") and n.stopped_at is None]
    return Queued(created, skipped, workers)

"""Updates, reminders, cancels and all-clears: new alerts that reference the original and reach its audience.

A follow-up goes to the channels of the original, replies in its thread where
the channel can (X reply, Telegram reply, an email's In-Reply-To), and reaches
the same recipients of each list (SMS, WhatsApp, email). A cancel also
withdraws whatever of the original has not gone out yet (in
:func:`broadcaster.app.fire.launch`): a false alert must stop spreading the
moment it is corrected.

Which of the original's channels a follow-up may reach is decided by today's
``channels.toml``, never by what they were when the original went out: an
exercise follow-up skips a channel that is no longer ``exercise = true`` (it may
be a public chat now), and a live one skips a channel that has become a drill
channel. Each skipped channel is named, with why, in the plan (``Plan.skipped``);
when none is left the follow-up is refused and nothing is sent.

What each says first (:mod:`broadcaster.templates.render`): an update "تحديث: / Update:", the n-th reminder
(a repeat by ``fire --every`` or a runbook's ``every``) "التذكير الثاني: / Second reminder:". A cancel
says why in its own approved text (``cancel.toml`` for an alert sent in error, ``call_off.toml`` for what
will not happen). An all-clear names what is over: ``road_reopened`` the road of a closure, ``all_clear`` the
event and area of anything else, to the original's channels and recipients, never the whole emirate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from broadcaster.app.context import App
from broadcaster.engine.outbox import CANCEL_STATES, FOLLOW_UP_STATES, FollowUp, Plan, plan_alert
from broadcaster.errors import SelectionError
from broadcaster.selection import drill_refusal
from broadcaster.states import CancelReason, DeliveryState, Mode, MsgType
from broadcaster.store.records import AlertRecord
from broadcaster.templates.catalogue import CANCEL_TEMPLATE
from broadcaster.templates.render import UPDATE_MARKER, reminder_marker
from broadcaster.templates.variables import Inputs
from broadcaster.timefmt import iso_seconds

# The approved text of each cancel reason; its original_event choices are keyed by template id.
CANCEL_TEMPLATES: Final = {CancelReason.ERROR: CANCEL_TEMPLATE, CancelReason.CALLED_OFF: "call_off"}
ROAD_REOPENED: Final = "road_reopened"
ALL_CLEAR: Final = "all_clear"
# The all_clear event choice of each original template (a road closure's all-clear is road_reopened).
ALL_CLEAR_EVENTS: Final = {"flood_warning": "flood", "earthquake": "earthquake", "dust_storm": "storm"}


def check_mode(original: AlertRecord, mode: Mode) -> None:
    """A live follow-up needs a live original; a rehearsal (dry-run) may follow anything."""
    if mode == Mode.DRY_RUN or mode == original.mode:
        return
    allowed = "--dry-run" if original.mode == Mode.DRY_RUN else f"--{original.mode} (or --dry-run to rehearse)"
    raise SelectionError(
        f"alert {original.id} was a {original.mode} alert; a {mode} follow-up would announce something that "
        f"never went out. Use {allowed}."
    )


def allowed_channels(app: App, original: AlertRecord, mode: Mode, what: str) -> tuple[list[str], dict[str, str]]:
    """The original's channels a ``mode`` follow-up may reach under today's config, and the others with why.

    A dry-run rehearses the follow-up the original's own mode would send. A channel gone from the config
    is kept here, so that planning names it (a follow-up must not quietly miss part of the audience).
    """
    audience = original.mode if mode == Mode.DRY_RUN else mode
    by_id = {c.id: c for c in app.config.channels}
    kept: list[str] = []
    skipped: dict[str, str] = {}
    for channel_id in original.channels:
        channel = by_id.get(channel_id)
        if channel is None or drill_refusal(channel, audience) is None:
            kept.append(channel_id)
        elif audience == Mode.EXERCISE:
            skipped[channel_id] = (f"no longer an exercise channel in {app.config.path} (exercise = true is gone): "
                                   f"an exercise {what} never reaches a channel that may be public")
        else:
            skipped[channel_id] = (f"now an exercise channel (exercise = true in {app.config.path}): a live {what} "
                                   f"never goes to a drill channel, though alert {original.id} went there; correct "
                                   "it there by hand if its audience needs it")
    if not kept:
        reasons = "; ".join(f"{c}: {why}" for c, why in skipped.items())
        raise SelectionError(f"alert {original.id}: no channel it went to may take this {mode} {what} as "
                             f"channels.toml stands now ({reasons}); nothing was sent")
    return kept, skipped


async def _follow_up(app: App, original: AlertRecord, states: Sequence[DeliveryState], mode: Mode,
                     what: str, now: float) -> FollowUp:
    channels, skipped = allowed_channels(app, original, mode, what)
    audiences = {}
    for channel in app.config.channels:
        if channel.id in channels and channel.recipients is not None:
            audiences[channel.id] = await app.store.alerts.audience(original.id, channel.id, states)
    # Its CAP <references> name every alert of the thread still current, not only the one it follows.
    thread = tuple(await app.store.alerts.thread(original.id, now))
    # The whole thread, expired alerts too: its first alert and how many it holds (a cell broadcast's serial).
    whole = await app.store.alerts.thread(original.id, -math.inf)
    root = next((a.id for a in whole if a.references is None), original.id)
    return FollowUp(original=original, reply_to=await app.store.alerts.provider_ids(original.id),
                    audiences=audiences, channels=tuple(channels), skipped=skipped, thread=thread,
                    root=root, number=max(len(whole), 1))


async def plan_update(app: App, original_id: str, overrides: Mapping[str, Mapping[str, str]], *, mode: Mode,
                      now: float, alert_id: str | None = None, created_by: str = "cli",
                      reminder: int | None = None) -> Plan:
    """An update of ``original_id``, marked "تحديث: / Update:"; or, with ``reminder`` (counted from 1), the
    original's message again, marked as that reminder."""
    original = await app.store.alerts.get(original_id)
    if original.msg_type == MsgType.CANCEL:
        raise SelectionError(f"alert {original_id} is a cancel; fire a new alert instead of updating it")
    check_mode(original, mode)
    inputs = {name: dict(values) for name, values in original.inputs.items()}
    for name, values in overrides.items():
        inputs.setdefault(name, {}).update(values)
    return await plan_alert(app.config, app.catalogue, original.template, inputs, mode=mode, now=now,
                            msg_type=MsgType.UPDATE,
                            follow_up=await _follow_up(app, original, FOLLOW_UP_STATES, mode, "update", now),
                            alert_id=alert_id, created_by=created_by,
                            marker=UPDATE_MARKER if reminder is None else reminder_marker(reminder))


async def plan_cancel(app: App, original_id: str, *, mode: Mode, now: float, alert_id: str | None = None,
                      created_by: str = "cli", reason: CancelReason = CancelReason.ERROR) -> Plan:
    """The cancel of ``original_id`` in the approved text of ``reason``: sent in error, or called off."""
    try:
        reason = CancelReason(reason)
    except ValueError:
        raise SelectionError(f"reason {reason!r}: must be one of {', '.join(CancelReason)}",
                             where="--reason") from None
    original = await app.store.alerts.get(original_id)
    if original.msg_type == MsgType.CANCEL:
        raise SelectionError(f"alert {original_id} is already a cancel")
    check_mode(original, mode)
    template_id = CANCEL_TEMPLATES[reason]
    choices = app.catalogue.get(template_id).variable("original_event")
    if choices is None or original.template not in choices.choices:
        other = " (or cancel it with --reason error if it was sent in error)" if reason != CancelReason.ERROR else ""
        raise SelectionError(
            f"templates/{template_id}.toml has no approved wording for {original.template!r}, so an alert of it "
            f"cannot be cancelled as {reason}{other}; to allow it, add {original.template!r} as a choice of "
            "original_event and approve the template"
        )
    sent = iso_seconds(original.sent_at, app.config.timezone)
    inputs = {"original_event": {"ar": original.template, "en": original.template},
              "original_sent": {"ar": sent, "en": sent}}
    return await plan_alert(app.config, app.catalogue, template_id, inputs, mode=mode, now=now,
                            msg_type=MsgType.CANCEL,
                            follow_up=await _follow_up(app, original, CANCEL_STATES, mode, "cancel", now),
                            alert_id=alert_id, created_by=created_by)


def all_clear_template(original: AlertRecord) -> str:
    """The template of ``original``'s all-clear: ``road_reopened`` after a road closure, else ``all_clear``."""
    if original.msg_type == MsgType.CANCEL:
        raise SelectionError(f"alert {original.id} is a cancel; there is nothing to give the all-clear for")
    if original.template in (ROAD_REOPENED, ALL_CLEAR):
        raise SelectionError(f"alert {original.id} is already an all-clear ({original.template})")
    if original.template == "road_closure":
        return ROAD_REOPENED
    if original.template not in ALL_CLEAR_EVENTS:
        raise SelectionError(f"templates/{ALL_CLEAR}.toml has no event for a {original.template!r} alert; fire "
                             f"{ALL_CLEAR} with its --var event and --area instead")
    return ALL_CLEAR


async def plan_all_clear(app: App, original_id: str, overrides: Inputs, *, mode: Mode, now: float,
                         alert_id: str | None = None, created_by: str = "cli") -> Plan:
    """The all-clear of ``original_id`` (an update of it, in CAP terms), to the original's audience.

    After a road closure it is ``road_reopened`` naming the closure's road; after anything else ``all_clear``
    with the original's event and area. Its time (``reopened``, ``ended``) is now unless ``overrides`` say.
    """
    original = await app.store.alerts.get(original_id)
    template_id = all_clear_template(original)
    check_mode(original, mode)
    at = iso_seconds(now, app.config.timezone)
    inputs: dict[str, dict[str, str]]
    if template_id == ROAD_REOPENED:
        inputs = {"road": dict(original.inputs["road"]), "reopened": {"ar": at, "en": at}}
    else:
        event = ALL_CLEAR_EVENTS[original.template]
        area = dict(original.inputs["area"]) if "area" in original.inputs else (
            {"ar": original.areas[0], "en": original.areas[0]} if len(original.areas) == 1 else {})
        inputs = {"event": {"ar": event, "en": event}, "ended": {"ar": at, "en": at}}
        if area:
            inputs["area"] = area
    for name, values in overrides.items():
        inputs.setdefault(name, {}).update(values)
    return await plan_alert(app.config, app.catalogue, template_id, inputs, mode=mode, now=now,
                            msg_type=MsgType.UPDATE,
                            follow_up=await _follow_up(app, original, FOLLOW_UP_STATES, mode, "all-clear", now),
                            alert_id=alert_id, created_by=created_by)

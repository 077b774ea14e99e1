"""Updates and cancels: new alerts that reference the original and reach the same audience.

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from broadcaster.app.context import App
from broadcaster.engine.outbox import CANCEL_STATES, FOLLOW_UP_STATES, FollowUp, Plan, plan_alert
from broadcaster.errors import SelectionError
from broadcaster.selection import drill_refusal
from broadcaster.states import DeliveryState, Mode, MsgType
from broadcaster.store.records import AlertRecord
from broadcaster.templates.catalogue import CANCEL_TEMPLATE
from broadcaster.timefmt import iso_seconds


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
    return FollowUp(original=original, reply_to=await app.store.alerts.provider_ids(original.id),
                    audiences=audiences, channels=tuple(channels), skipped=skipped, thread=thread)


async def plan_update(app: App, original_id: str, overrides: Mapping[str, Mapping[str, str]], *, mode: Mode,
                      now: float, alert_id: str | None = None, created_by: str = "cli") -> Plan:
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
                            alert_id=alert_id, created_by=created_by)


async def plan_cancel(app: App, original_id: str, *, mode: Mode, now: float, alert_id: str | None = None,
                      created_by: str = "cli") -> Plan:
    original = await app.store.alerts.get(original_id)
    if original.msg_type == MsgType.CANCEL:
        raise SelectionError(f"alert {original_id} is already a cancel")
    check_mode(original, mode)
    choices = app.catalogue.get(CANCEL_TEMPLATE).variable("original_event")
    if choices is None or original.template not in choices.choices:
        raise SelectionError(
            f"templates/{CANCEL_TEMPLATE}.toml has no approved wording for {original.template!r}: add it as a "
            "choice of original_event and approve the template"
        )
    sent = iso_seconds(original.sent_at, app.config.timezone)
    inputs = {"original_event": {"ar": original.template, "en": original.template},
              "original_sent": {"ar": sent, "en": sent}}
    return await plan_alert(app.config, app.catalogue, CANCEL_TEMPLATE, inputs, mode=mode, now=now,
                            msg_type=MsgType.CANCEL,
                            follow_up=await _follow_up(app, original, CANCEL_STATES, mode, "cancel", now),
                            alert_id=alert_id, created_by=created_by)

"""Updates and cancels: new alerts that reference the original and reach the same audience.

A follow-up goes to exactly the channels of the original, replies in its thread
where the channel can (X reply, Telegram reply), and reaches the same SMS
recipients. A cancel also withdraws whatever of the original has not gone out
yet: a false alert must stop spreading the moment it is corrected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from broadcaster.app import App
from broadcaster.engine.outbox import Plan, plan_alert
from broadcaster.errors import SelectionError
from broadcaster.store.base import AlertRecord
from broadcaster.timefmt import iso_seconds

CANCEL_TEMPLATE: Final = "cancel"


def check_mode(original: AlertRecord, mode: str) -> None:
    """A live follow-up needs a live original; a rehearsal (dry-run) may follow anything."""
    if mode == "dry-run" or mode == original.mode:
        return
    allowed = "--dry-run" if original.mode == "dry-run" else f"--{original.mode} (or --dry-run to rehearse)"
    raise SelectionError(
        f"alert {original.id} was a {original.mode} alert; a {mode} follow-up would announce something that "
        f"never went out. Use {allowed}."
    )


def plan_update(app: App, original_id: str, overrides: Mapping[str, Mapping[str, str]], *, mode: str,
                now: float) -> Plan:
    original = app.store.alert(original_id)
    if original.msg_type == "Cancel":
        raise SelectionError(f"alert {original_id} is a cancel; fire a new alert instead of updating it")
    check_mode(original, mode)
    inputs = {name: dict(values) for name, values in original.inputs.items()}
    for name, values in overrides.items():
        inputs.setdefault(name, {}).update(values)
    return plan_alert(app.config, app.catalogue, original.template, inputs, mode=mode, now=now,
                      msg_type="Update", original=original, reply_to=app.store.provider_ids(original_id),
                      store=app.store)


def plan_cancel(app: App, original_id: str, *, mode: str, now: float) -> Plan:
    original = app.store.alert(original_id)
    if original.msg_type == "Cancel":
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
    return plan_alert(app.config, app.catalogue, CANCEL_TEMPLATE, inputs, mode=mode, now=now, msg_type="Cancel",
                      original=original, reply_to=app.store.provider_ids(original_id), store=app.store)


def withdraw_original(app: App, plan: Plan) -> int:
    """For a real cancel: stop the original's deliveries that have not gone out.

    Only a cancel in the original's own mode withdraws anything: a dry-run
    rehearsal of cancelling a live alert must never stop that live alert.
    """
    if plan.alert.msg_type != "Cancel" or plan.alert.references is None:
        return 0
    if app.store.alert(plan.alert.references).mode != plan.alert.mode:
        return 0
    return app.store.withdraw(plan.alert.references, f"withdrawn by cancel {plan.alert.id}")

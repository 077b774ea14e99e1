"""JSON shapes of the API. Where the CLI has a ``--json`` form, these match it field for field
(``tests/service/test_api.py`` compares them), so scripts and the console read the same objects."""

from __future__ import annotations

from typing import Any

from broadcaster.config import ChannelConfig, Config
from broadcaster.engine.outbox import Plan
from broadcaster.states import DeliveryState
from broadcaster.store.pending import PendingFire
from broadcaster.store.records import AlertRecord, DeliveryRow
from broadcaster.templates.catalogue import Template
from broadcaster.templates.catalogue import template_detail as template_detail  # re-exported for api.py
from broadcaster.templates.gazetteer import Gazetteer
from broadcaster.timefmt import iso_seconds


def template_summary(t: Template) -> dict[str, Any]:
    """As one item of ``broadcaster templates list --json``."""
    return {"id": t.id, "version": t.version, "title": dict(t.title), "approved": t.approved,
            "kinds": list(t.kinds), "two_person": t.two_person}




def gazetteer_list(gazetteer: Gazetteer) -> list[dict[str, Any]]:
    return [{"code": p.code, "type": p.type, "ar": p.name("ar"), "en": p.name("en"), "areas": list(p.areas)}
            for p in gazetteer]


def channel_summary(c: ChannelConfig) -> dict[str, Any]:
    """Never a secret, nor the name of the variable holding one."""
    return {"id": c.id, "kind": c.kind, "languages": list(c.languages), "areas": list(c.areas),
            "exercise": c.exercise, "rate_per_second": c.rate_per_second}


def delivery(d: DeliveryRow, receipt: tuple[str, str | None] | None = None) -> dict[str, Any]:
    """As one item of ``fire --json`` ``deliveries``, plus the latest Twilio ``receipt`` status.

    ``moved_from`` names the channel an SMS was moved away from by failover (its circuit opened), else None.

    ``state`` shows a receipted SMS as ``delivered`` or ``undelivered`` instead of ``sent``.
    """
    state = receipt[1] if d.state == DeliveryState.SENT and receipt is not None and receipt[1] else d.state
    return {"channel": d.channel_id, "recipient": d.recipient, "language": d.language, "state": str(state),
            "attempts": d.attempts, "provider_id": d.provider_id, "receipt": receipt[0] if receipt else None,
            "moved_from": d.moved_from}


def alert_summary(config: Config, alert: AlertRecord, *, state: str, counts: dict[str, dict[str, int]],
                  confirmed_by: str | None = None) -> dict[str, Any]:
    tz = config.timezone
    return {
        "alert_id": alert.id, "template": alert.template, "mode": str(alert.mode), "msg_type": str(alert.msg_type),
        "references": alert.references, "sent": iso_seconds(alert.sent_at, tz),
        "expires": iso_seconds(alert.expires_at, tz), "areas": list(alert.areas), "channels": list(alert.channels),
        "created_by": alert.created_by, "confirmed_by": confirmed_by, "state": state, "counts": counts,
    }


def pending_summary(config: Config, p: PendingFire, *, state: str) -> dict[str, Any]:
    """A two-person fire still waiting (or never confirmed): no alert exists yet."""
    tz = config.timezone
    kind = p.request.get("kind", "fire")
    return {
        "alert_id": p.alert_id, "template": p.template, "mode": p.mode,
        "msg_type": {"fire": "Alert", "update": "Update", "cancel": "Cancel"}.get(kind, "Alert"),
        "references": p.request.get("original"), "sent": None, "expires": None,
        "areas": list(p.request.get("areas", [])), "channels": [], "created_by": p.requested_by,
        "confirmed_by": None, "state": state, "counts": {},
        "requested_at": iso_seconds(p.requested_at, tz), "confirm_by": iso_seconds(p.confirm_by, tz),
    }


def held_preview(plan: Plan) -> dict[str, Any]:
    """A held fire as the public would see it: every message, the SMS audience and its cost in segments."""
    sms = plan.sms_total  # each phone once: one SMS per phone per alert
    return {
        "channels": [c.id for c in plan.channels],
        "messages": [row.as_json() for row in plan.rows],
        "sms_recipients": sms.phones,
        "cost_segments": sms.segments,
        "sms": sms.as_json(),
    }

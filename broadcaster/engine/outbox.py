"""Plan an alert: check, render and measure every delivery before anything is stored.

``plan_alert`` does all the validation that can fail on input (template approval,
variables, areas, channel selection, lengths); each channel's kind shapes and
measures its messages. ``commit`` then writes the alert and every delivery as
``pending`` in one transaction, with each kind's request body built from one
:class:`~broadcaster.channels.base.AlertDocument` of the alert as committed (so a
plan whose alert id changes before the commit never carries a stale body). The
alert exists durably or not at all, and no network call happens before it does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from broadcaster.channels.base import AlertDocument
from broadcaster.channels.registry import KINDS, kind_of
from broadcaster.config import ChannelConfig, Config
from broadcaster.errors import SelectionError, TemplateError
from broadcaster.recipients import iter_recipients
from broadcaster.selection import select_channels
from broadcaster.store.base import AlertRecord, MessageRecord, NewDelivery, Store
from broadcaster.templates.catalogue import Catalogue, Template
from broadcaster.templates.render import Forms, Rendered, render_forms
from broadcaster.templates.variables import Inputs, resolve
from broadcaster.timefmt import iso_seconds

MODES: Final = ("dry-run", "exercise", "live")
CAP_STATUS: Final = {"dry-run": "Test", "exercise": "Exercise", "live": "Actual"}
# An update goes to everyone the original reached or will reach; a cancel only to
# those it may have reached (its still-pending deliveries are withdrawn first).
FOLLOW_UP_STATES: Final = ("sent", "sending", "unknown", "pending")
CANCEL_STATES: Final = ("sent", "sending", "unknown")


@dataclass(frozen=True, slots=True)
class PreviewRow:
    """One message as one channel would send it, with its audience and cost."""

    channel: str
    kind: str
    rendered: Rendered
    recipients: int

    @property
    def cost_segments(self) -> int:
        return (self.rendered.segments or 1) * self.recipients

    def as_json(self) -> dict[str, object]:
        r = self.rendered
        return {
            "channel": self.channel, "kind": self.kind, "language": r.language, "text": r.text,
            "length": r.length, "limit": r.limit, "unit": r.unit, "segments": r.segments,
            "encoding": r.encoding, "recipients": self.recipients, "cost_segments": self.cost_segments,
        }


@dataclass
class Plan:
    """Everything ``fire`` will commit, already checked: one row per message, in config order."""

    alert: AlertRecord
    template: Template
    channels: list[ChannelConfig]
    forms: Forms
    rows: list[PreviewRow]
    recipient_filter: tuple[str, ...]  # area codes the alert reaches (empty = everywhere)
    known_areas: set[str]
    config: Config
    sms_from_alert: str | None = None  # follow-ups go to the original alert's recipients
    reply_to: Mapping[tuple[str, str | None, str], str] = field(default_factory=dict)

    def document(self) -> AlertDocument:
        """What request bodies say about the alert, from the alert as it stands (its final id)."""
        return alert_document(self.config, self.template, self.alert)

    def messages(self) -> list[MessageRecord]:
        """One stored text per channel and language, with the kind's request body, if it sends one."""
        document = self.document()
        return [
            MessageRecord(key=_key(row.channel, row.rendered.language), channel_id=row.channel,
                          language=row.rendered.language, text=row.rendered.text,
                          payload=KINDS[row.kind].payload(document, row.rendered))
            for row in self.rows
        ]

    def deliveries(self, store: Store | None = None) -> Iterator[NewDelivery]:
        """Every delivery, Arabic first; recipient lists are streamed, never loaded whole."""
        for channel in self.channels:
            keys = {r.rendered.language: _key(r.channel, r.rendered.language) for r in self.rows
                    if r.channel == channel.id}
            if channel.recipients is None:
                for language, key in keys.items():
                    yield NewDelivery(channel.id, key, language,
                                      reply_to=self.reply_to.get((channel.id, None, language)))
                continue
            for phone, language in self._sms_audience(channel, store):
                lang = language if language in keys else channel.languages[0]
                yield NewDelivery(channel.id, keys[lang], lang, recipient=phone)

    def _sms_audience(self, channel: ChannelConfig, store: Store | None) -> Iterator[tuple[str, str]]:
        if self.sms_from_alert is not None:
            # A follow-up goes to everyone the original may have reached.
            if store is None:
                raise ValueError("a follow-up needs the store to find the original recipients")
            states = CANCEL_STATES if self.alert.msg_type == "Cancel" else FOLLOW_UP_STATES
            yield from store.recipients(self.sms_from_alert, channel.id, states)
            return
        wanted = set(self.recipient_filter)
        assert channel.recipients is not None  # only per-recipient channels have an audience
        for r in iter_recipients(channel.recipients, known_areas=self.known_areas, where=channel.where):
            if not wanted or r.area in wanted:
                yield r.phone, r.language

    def audience(self, channel: ChannelConfig, store: Store | None = None) -> dict[str, int]:
        """Recipients per language (one pass over the list); empty for a channel that posts once."""
        if channel.recipients is None:
            return {}
        counts = dict.fromkeys(channel.languages, 0)
        for _, lang in self._sms_audience(channel, store):
            counts[lang if lang in counts else channel.languages[0]] += 1
        return counts


def new_alert_id(now: float) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)


def plan_alert(
    config: Config,
    catalogue: Catalogue,
    template_id: str,
    inputs: Inputs,
    *,
    mode: str,
    now: float,
    areas: tuple[str, ...] = (),
    selection: str = "all",
    msg_type: str = "Alert",
    original: AlertRecord | None = None,
    reply_to: Mapping[tuple[str, str | None, str], str] | None = None,
    require_approval: bool = True,
    store: Store | None = None,
) -> Plan:
    """Check and render an alert; raise an InputError (nothing stored) on any problem."""
    if mode not in MODES:
        raise SelectionError(f"mode must be one of {', '.join(MODES)}")
    template = catalogue.approved(template_id) if require_approval else catalogue.get(template_id)
    gazetteer = catalogue.gazetteer
    values = resolve(template, gazetteer, inputs, config.timezone)
    known_areas = gazetteer.area_codes()
    for area in areas:
        if area not in known_areas:
            raise SelectionError(f"--area {area}: not an area in the gazetteer ({', '.join(sorted(known_areas))})")
    alert_areas = areas or (original.areas if original else values.areas)
    reach: set[str] = set()
    for code in alert_areas:
        reach |= gazetteer.reach(code)
    recipient_filter = tuple(sorted(reach))

    if original is not None:
        # A follow-up reaches exactly the channels the original reached.
        by_id = {c.id: c for c in config.channels}
        missing = [c for c in original.channels if c not in by_id]
        if missing:
            raise SelectionError(f"channel {missing[0]!r} of alert {original.id} is no longer in {config.path}")
        channels = [by_id[c] for c in original.channels]
    else:
        channels = select_channels(
            config.channels, selection, kinds=template.kinds, areas=recipient_filter,
            exercise_only=mode == "exercise", known_areas=known_areas,
        )
    forms = render_forms(template, values.display, exercise=mode == "exercise")

    alert_id = new_alert_id(now)
    alert = AlertRecord(
        id=alert_id, template=template.id, template_hash=template.content_hash, mode=mode, msg_type=msg_type,
        references=original.id if original else None, sent_at=now, expires_at=now + template.expires_hours * 3600,
        areas=tuple(alert_areas), channels=tuple(c.id for c in channels),
        inputs={k: dict(v) for k, v in values.inputs.items()}, forms={k: dict(v) for k, v in forms.items()},
    )
    plan = Plan(alert, template, channels, forms, [], recipient_filter, known_areas, config,
                sms_from_alert=original.id if original else None, reply_to=reply_to or {})
    for channel in channels:
        audience = plan.audience(channel, store)
        for r in kind_of(channel).render(forms, channel):
            if not r.fits:
                raise TemplateError(
                    f"the {r.language} message for channel {channel.id!r} is {r.length} {r.unit}, over the limit of "
                    f"{r.limit}; nothing was sent and nothing is ever cut. Fix the template or its max_length.",
                    where=str(template.path),
                )
            plan.rows.append(PreviewRow(channel.id, channel.kind, r, audience.get(r.language, 1)))
    return plan


def _key(channel_id: str, language: str) -> str:
    return f"{channel_id}/{language}"


def alert_document(config: Config, template: Template, alert: AlertRecord) -> AlertDocument:
    """The one document per alert that kinds build request bodies from (the webhook's JSON)."""
    return AlertDocument(
        alert_id=alert.id,
        identifier=f"{config.sender}/{alert.id}",
        sender=config.sender,
        sent=iso_seconds(alert.sent_at, config.timezone),
        expires=iso_seconds(alert.expires_at, config.timezone),
        status=CAP_STATUS[alert.mode],
        msg_type=alert.msg_type,
        references=alert.references,
        template=template.id,
        cap=dict(template.cap),
        event=dict(template.event),
        areas=tuple(alert.areas),
        forms={lang: dict(alert.forms[lang]) for lang in ("ar", "en")},
    )


def commit(store: Store, plan: Plan) -> tuple[int, int]:
    """Write the alert and all its deliveries as pending, atomically."""
    return store.create_alert(plan.alert, plan.messages(), plan.deliveries(store))

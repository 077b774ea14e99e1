"""Plan an alert: check, render and measure every delivery before anything is stored; then commit it.

:func:`plan_alert` does all the validation that can fail on input (template
approval, variables, areas, channel selection, lengths). :func:`commit` then
writes the alert and every delivery as ``pending`` in one transaction. The
alert exists durably or not at all, and no network call happens before it does.

Each channel's kind shapes and measures its messages and builds its request
body from one :class:`~broadcaster.channels.base.AlertDocument` of the alert.
Recipient lists are never held whole: the preview counts them from a cached
index (:func:`broadcaster.recipients.index_list`), and the commit streams them
in batches read on a worker thread. A follow-up reaches the original's
recipients by a copy inside the database.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from broadcaster.audit import AuditEntry
from broadcaster.cap import cap_document, info_values, validate
from broadcaster.cap_signing import sign, signer_for
from broadcaster.cards.content import CardContent, card_contents
from broadcaster.cards.render import Card, render_cards
from broadcaster.channels.base import AlertDocument
from broadcaster.channels.registry import kind_of
from broadcaster.clock import in_thread
from broadcaster.config import ChannelConfig, Config
from broadcaster.engine.audience import SmsAudience, rows_audience, sms_audience
from broadcaster.errors import ConfigError, Conflict, SelectionError, TemplateError
from broadcaster.recipients import ListFormat, index_list, iter_recipients
from broadcaster.selection import select_channels
from broadcaster.states import CAP_STATUS, DeliveryState, Mode, MsgType
from broadcaster.store import Store
from broadcaster.store.records import AlertRecord, AudienceCopy, MessageRecord, NewDelivery, StepClaim
from broadcaster.templates.catalogue import LANGUAGES, Catalogue, Template
from broadcaster.templates.render import Forms, Rendered, mark, render_forms
from broadcaster.templates.variables import Inputs, resolve
from broadcaster.templates.verify_line import public_url_problem, short_code, with_verify_line
from broadcaster.timefmt import iso_seconds

BATCH: Final = 2_000  # recipients per outbox chunk: a few milliseconds of inserts between yields
# An update goes to everyone the original reached or will reach; a cancel only to
# those it may have reached (its still-pending deliveries are withdrawn first).
FOLLOW_UP_STATES: Final = (DeliveryState.SENT, DeliveryState.SENDING, DeliveryState.UNKNOWN, DeliveryState.PENDING)
CANCEL_STATES: Final = (DeliveryState.SENT, DeliveryState.SENDING, DeliveryState.UNKNOWN)


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


@dataclass(frozen=True, slots=True)
class RecipientList:
    """One channel's recipients from its list file, filtered to the alert's areas."""

    channel_id: str
    path: Path
    where: str
    areas: frozenset[str]  # empty: everywhere
    known_areas: frozenset[str]
    keys: Mapping[str, str]  # language -> message key
    fallback: str  # the message language of a recipient whose own the channel does not send (or "ar+en")
    list_format: ListFormat = ListFormat.PHONE
    prefix: str = ""  # written before each address (``whatsapp:``)


async def _batches(source: RecipientList) -> AsyncIterator[list[NewDelivery]]:
    """The list's deliveries in batches, each read and checked on a worker thread, never on the loop."""
    rows = iter_recipients(source.path, known_areas=set(source.known_areas), where=source.where,
                           list_format=source.list_format)

    def chunk() -> tuple[list[NewDelivery], bool]:
        found: list[NewDelivery] = []
        for r in rows:
            if source.areas and r.area not in source.areas:
                continue
            lang = r.language if r.language in source.keys else source.fallback
            found.append(NewDelivery(source.channel_id, source.keys[lang], lang, recipient=source.prefix + r.address))
            if len(found) >= BATCH:
                return found, False
        return found, True

    done = False
    while not done:
        batch, done = await in_thread(chunk)
        if batch:
            yield batch


@dataclass
class Plan:
    """Everything ``fire`` will commit, already checked."""

    alert: AlertRecord
    template: Template
    channels: list[ChannelConfig]
    forms: Forms
    rows: list[PreviewRow]
    messages: list[MessageRecord]
    posts: list[NewDelivery] = field(default_factory=list)  # one per post channel and language
    lists: list[RecipientList] = field(default_factory=list)  # recipient lists, streamed at commit
    copies: list[AudienceCopy] = field(default_factory=list)  # a follow-up's audience, copied in the database
    step: StepClaim | None = None  # the runbook step this alert fires for (committed only while still held)
    skipped: dict[str, str] = field(default_factory=dict)  # a follow-up: the original's channels left out, and why
    notes: list[str] = field(default_factory=list)  # what the officer should know before sending (plan warnings)
    audit: AuditEntry | None = None  # appended once the outbox is committed (app.fire.launch sets it)
    withdraws: str | None = None  # a cancel: the original whose undelivered deliveries its commit withdraws
    card_contents: Mapping[str, CardContent] = field(default_factory=dict)  # what each language's card says
    cards: Mapping[str, Card] = field(default_factory=dict)  # the cards some channel carries, rendered
    sms: SmsAudience | None = None  # the SMS audience and cost, each phone once (plan_alert sets it)

    @property
    def sms_total(self) -> SmsAudience:
        """The SMS recipients and cost, each phone once, as the commit will send them."""
        return self.sms or rows_audience(self.rows)

    async def deliveries(self) -> AsyncIterator[Sequence[NewDelivery]]:
        """Every delivery to commit, Arabic first; recipient lists arrive in batches."""
        if self.posts:
            yield self.posts
        for source in self.lists:
            async for batch in _batches(source):
                yield batch


def new_alert_id(now: float) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What a follow-up plan takes from its original alert."""

    original: AlertRecord
    reply_to: Mapping[tuple[str, str | None, str], str]
    audiences: Mapping[str, Mapping[str, int]]  # channel -> language -> recipients the follow-up reaches
    channels: tuple[str, ...]  # the original's channels the follow-up may still reach, as configured today
    skipped: Mapping[str, str] = field(default_factory=dict)  # the original's other channels -> why not
    thread: tuple[AlertRecord, ...] = ()  # the unexpired alerts of the original's thread: CAP <references>
    root: str | None = None  # the first alert of the thread, expired or not (a cell broadcast's message code)
    number: int = 1  # this follow-up's place in the thread: how many alerts it holds already (its update number)


async def plan_alert(
    config: Config,
    catalogue: Catalogue,
    template_id: str,
    inputs: Inputs,
    *,
    mode: Mode,
    now: float,
    areas: tuple[str, ...] = (),
    selection: str = "all",
    msg_type: MsgType = MsgType.ALERT,
    follow_up: FollowUp | None = None,
    require_approval: bool = True,
    alert_id: str | None = None,
    created_by: str = "cli",
    marker: Mapping[str, str] | None = None,
) -> Plan:
    """Check and render an alert; raise an InputError (nothing stored) on any problem.

    ``alert_id`` keeps an id already given out (a two-person fire confirmed later). ``marker`` starts every
    form of every language (an update's "تحديث: / Update:", a reminder's count), after any exercise marker.
    """
    try:
        mode = Mode(mode)
    except ValueError:
        raise SelectionError(f"mode must be one of {', '.join(Mode)}") from None
    template = catalogue.approved(template_id) if require_approval else catalogue.get(template_id)
    gazetteer = catalogue.gazetteer
    values = resolve(template, gazetteer, inputs, config.timezone, now=now)
    known_areas = gazetteer.area_codes()
    for area in areas:
        if area not in known_areas:
            raise SelectionError(f"--area {area}: not an area in the gazetteer ({', '.join(sorted(known_areas))})")
    original = follow_up.original if follow_up else None
    alert_areas = areas or (original.areas if original else values.areas)
    reach: set[str] = set()
    for code in alert_areas:
        reach |= gazetteer.reach(code)

    if follow_up is not None:
        # A follow-up reaches the channels the original reached that today's config still allows
        # (chosen by broadcaster.app.follow_up).
        by_id = {c.id: c for c in config.channels}
        missing = [c for c in follow_up.channels if c not in by_id]
        if missing:
            raise SelectionError(f"channel {missing[0]!r} of alert {follow_up.original.id} is no longer in "
                                 f"{config.path}")
        channels = [by_id[c] for c in follow_up.channels]
    else:
        channels = select_channels(
            config.channels, selection, kinds=template.kinds, areas=tuple(sorted(reach)),
            mode=mode, known_areas=known_areas,
        )
    alert_id = alert_id or new_alert_id(now)
    unmarked = render_forms(template, values.display, exercise=mode == Mode.EXERCISE)
    forms = mark(unmarked, marker)
    short = None
    if template.verify_line:  # the one link in a text, built here: never without it, never typed by an officer
        problem = public_url_problem(config.public_url)
        if problem is not None:
            raise ConfigError(f"cannot send template {template.id!r}: {problem}", where=str(config.path))
        assert config.public_url is not None
        short = short_code(alert_id)
        forms = with_verify_line(forms, config.public_url, short)

    alert = AlertRecord(
        id=alert_id, template=template.id, template_hash=template.content_hash, mode=mode,
        msg_type=msg_type, references=original.id if original else None, sent_at=now,
        expires_at=expires_at(template, values.inputs, now), areas=tuple(alert_areas),
        channels=tuple(c.id for c in channels), inputs={k: dict(v) for k, v in values.inputs.items()},
        forms={k: dict(v) for k, v in forms.items()}, created_by=created_by, short=short,
    )
    alert = dataclasses.replace(alert, cap=await cap_snapshot(config, catalogue, template, alert, follow_up))
    plan = Plan(alert, template, channels, forms, [], [], skipped=dict(follow_up.skipped) if follow_up else {})
    plan.card_contents = alert_card_contents(config, catalogue, alert, template)
    shown = [lang for lang in LANGUAGES if any(lang in kind_of(c).card_languages(c) for c in channels)]
    attached = [lang for lang in shown if any(lang in kind_of(c).card_languages(c) and not kind_of(c).card_by_url
                                              for c in channels)]
    # Off the loop; a text that does not fit its card stops the plan here, with nothing stored. A card a
    # provider fetches from serve (Instagram) is only proved to fit now; serve draws it when asked.
    if attached:
        plan.cards = await in_thread(render_cards, plan.card_contents, attached)
    if set(shown) - set(attached):
        await in_thread(render_cards, plan.card_contents, set(shown) - set(attached), encode=False)
    document = alert_document(config, template, alert, values.display,
                              cards={lang: card.png for lang, card in plan.cards.items()})
    if follow_up is not None:
        document = dataclasses.replace(document, thread_root=follow_up.root or follow_up.original.id,
                                       thread_number=follow_up.number)
    states = CANCEL_STATES if msg_type == MsgType.CANCEL else FOLLOW_UP_STATES
    for channel in channels:
        kind = kind_of(channel)
        # A kind that sends only registered text (WhatsApp's Content templates) cannot carry a follow-up marker:
        # its rows show what it really sends, and the plan says so.
        rendered = kind.render(unmarked if kind.registered_text else forms, channel)
        if marker and kind.registered_text:
            plan.notes.append(f"channel {channel.id!r} ({channel.kind}) sends its approved registered template, "
                              f"without \"{marker['ar']} / {marker['en']}\" in front")
        if short and kind.registered_text:
            plan.notes.append(f"channel {channel.id!r} ({channel.kind}) sends its approved registered template, "
                              "without the verification line")
        keys = {r.language: f"{channel.id}/{r.language}" for r in rendered}
        problems = kind.template_problems(channel, template.id, exercise=mode == Mode.EXERCISE)
        if problems:
            raise ConfigError(f"cannot send template {template.id!r}: {'; '.join(problems)}", where=channel.where)
        if channel.recipients is not None:  # one delivery per recipient (SMS, WhatsApp, email)
            # A recipient gets the message in their own language, or the channel's first (a combined
            # message, both languages in one, when the kind renders one).
            fallback = channel.languages[0] if channel.languages[0] in keys else rendered[0].language
            if follow_up is not None:
                audience = dict(follow_up.audiences.get(channel.id, {}))
                plan.copies.append(AudienceCopy(channel.id, follow_up.original.id, states, keys, fallback))
            else:
                source = RecipientList(channel.id, channel.recipients, f"{channel.where}: key 'recipients'",
                                       frozenset(reach), frozenset(known_areas), keys, fallback, channel.list_format,
                                       channel.address_prefix)
                index = await in_thread(index_list, source.path, known_areas=set(known_areas), where=source.where,
                                        list_format=channel.list_format)
                audience = dict(index.audience(set(reach)))
                plan.lists.append(source)
            counts = dict.fromkeys(keys, 0)
            for lang, n in audience.items():
                counts[lang if lang in counts else fallback] += n
        for r in rendered:
            if not r.fits:
                raise TemplateError(
                    f"the {r.language} message for channel {channel.id!r} is {r.length} {r.unit}, over the limit of "
                    f"{r.limit}; nothing was sent and nothing is ever cut. Fix the template or its max_length.",
                    where=str(template.path),
                )
            plan.messages.append(MessageRecord(
                key=keys[r.language], channel_id=channel.id, language=r.language, text=r.text,
                payload=kind.payload(document, r, channel),
            ))
            if channel.recipients is not None:
                plan.rows.append(PreviewRow(channel.id, channel.kind, r, counts.get(r.language, 0)))
            else:
                reply = follow_up.reply_to.get((channel.id, None, r.language)) if follow_up else None
                plan.posts.append(NewDelivery(channel.id, keys[r.language], r.language, reply_to=reply))
                plan.rows.append(PreviewRow(channel.id, channel.kind, r, 1))
    return plan


async def count_phones(plan: Plan) -> Plan:
    """``plan`` with its SMS total counting each phone once, as the commit will send it (one SMS per phone).

    For what a person reads (previews, the typed confirmation, a second officer's review): it reads every SMS
    list again, so a fire that nobody reviews first does not wait for it.
    """
    plan.sms = await sms_audience(plan.rows, plan.lists, {c.id: c.kind for c in plan.channels})
    return plan


def expires_at(template: Template, inputs: Mapping[str, Mapping[str, str]], now: float) -> float:
    """When the alert expires: its own end time (``[cap] expires_from``, a flood warning "until 23:00")
    when the template names one and it is still ahead, else ``expires_hours`` from now."""
    end = inputs.get(template.expires_from or "", {}).get("en")
    if end:
        moment = datetime.fromisoformat(end).timestamp()
        if moment > now:
            return moment
    return now + template.expires_hours * 3600


async def cap_snapshot(config: Config, catalogue: Catalogue, template: Template, alert: AlertRecord,
                       follow_up: FollowUp | None) -> str:
    """The alert's CAP 1.2 document, built, signed (when ``channels.toml`` names a signing key) and checked
    against the schema now (off the loop), to be committed with it: the signed bytes never change afterwards.
    A document that cannot be built or is not valid refuses the plan: nothing is stored or sent."""
    original = follow_up.original if follow_up else None
    original_values = None
    if original is not None and alert.msg_type == MsgType.CANCEL:
        if original.cap is not None:
            original_values = await in_thread(info_values, original.cap)
        elif original.template in catalogue.ids():  # an original from before CAP documents were stored
            earlier = catalogue.get(original.template)
            original_values = {**earlier.cap, "event": dict(earlier.event)}

    def build() -> str:
        document = cap_document(alert, template, catalogue.gazetteer, config, original=original,
                                thread=follow_up.thread if follow_up else (), original_values=original_values)
        signer = signer_for(config)  # once per process and key file (KeyProblem: nothing is stored or sent)
        if signer is not None:
            document = sign(document, signer)
        validate(document)  # the signature sits where CAP 1.2 allows other namespaces: still valid
        return document.decode()

    try:
        return await in_thread(build)
    except ValueError as exc:
        raise TemplateError(f"the CAP document of this alert cannot be built: {exc}; nothing was sent",
                            where=str(template.path)) from None


def alert_card_contents(config: Config, catalogue: Catalogue, alert: AlertRecord,
                        template: Template | None = None) -> dict[str, CardContent]:
    """What the alert's card says in each language: the same at fire time and when ``serve`` publishes it."""
    return card_contents(config, template or catalogue.get(alert.template), catalogue.gazetteer, alert_id=alert.id,
                         mode=alert.mode, msg_type=str(alert.msg_type), sent_at=alert.sent_at,
                         expires_at=alert.expires_at, areas=alert.areas, forms=alert.forms)


def alert_document(config: Config, template: Template, alert: AlertRecord,
                   display: Mapping[str, Mapping[str, str]] | None = None,
                   cards: Mapping[str, bytes] | None = None) -> AlertDocument:
    """The one document per alert that kinds build request bodies from (the webhook's JSON, cards, card URLs).

    ``display`` is each variable's text per language as the forms show it (a
    WhatsApp template is sent as these values).
    """
    return AlertDocument(
        alert_id=alert.id,
        identifier=f"{config.sender}/{alert.id}",
        sender=config.sender,
        sent=iso_seconds(alert.sent_at, config.timezone),
        expires=iso_seconds(alert.expires_at, config.timezone),
        status=CAP_STATUS[alert.mode],
        msg_type=str(alert.msg_type),
        references=alert.references,
        template=template.id,
        cap=dict(template.cap),
        event=dict(template.event),
        areas=tuple(alert.areas),
        forms={lang: dict(alert.forms[lang]) for lang in ("ar", "en")},
        texts={lang: dict(template.text[lang]) for lang in ("ar", "en")},
        values={name: dict(by_lang) for name, by_lang in (display or {}).items()},
        cards=dict(cards or {}),
        public_url=config.public_url,
        cap_xml=alert.cap.encode() if alert.cap is not None else None,
    )


async def commit(store: Store, plan: Plan) -> tuple[int, int]:
    """Write the alert and all its deliveries as pending, atomically: ``(created, duplicates skipped)``.

    An alert's verification code must name it alone: a code another alert holds (two alert ids whose sha256
    share 40 bits) refuses the commit here, and the store's primary key refuses it in a race.
    """
    short = plan.alert.short
    if short is not None:
        holder = await store.alerts.by_short(short)
        if holder is not None and holder != plan.alert.id:
            raise Conflict(f"the verification code {short} of alert {plan.alert.id} is already alert {holder}'s "
                           "(a 1 in 10^12 chance); nothing was committed or sent: fire again, and the new alert "
                           "gets a new code")
    return await store.alerts.create(plan.alert, plan.messages, plan.deliveries(), plan.copies, plan.step,
                                     plan.withdraws)

"""The after-action report of one alert: who was reached, how fast, what failed, how fast it was corrected.

Computed here once for every face (``broadcaster report``, ``GET /api/alerts/{id}/report``
and its HTML twin) from store reads only. Rows are gathered on the loop, page by page;
the sorting and counting of a big alert's attempts runs in a thread.

* Reach: per channel and language, deliveries by final state and recipients, with
  Twilio's delivery receipts on top where the provider sends them.
* Latency: from the outbox commit (the alert's ``sent_at``: every delivery is
  committed with it, in one transaction) to the attempt a provider accepted,
  per channel: p50, p90, p99 (nearest rank) and max.
* Failures: every attempt that did not go out, grouped by the error taxonomy's
  ``Reason`` (the stored detail starts with it), with an example (already scrubbed
  of secrets when it was stored); retries are attempts beyond the first.
* The thread: the original, its updates and cancel, each with its time to correct
  (the original's sent time to the follow-up's first accepted delivery).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from broadcaster.app.context import App
from broadcaster.clock import in_thread
from broadcaster.errors import Reason
from broadcaster.states import DeliveryState, Mode, Outcome
from broadcaster.store.records import AlertRecord, MessageRecord
from broadcaster.timefmt import iso

ACCEPTED: Final = (Outcome.SENT, Outcome.RECONCILED)
NOT_SENT: Final = (Outcome.RETRY, Outcome.FAILED, Outcome.UNKNOWN, Outcome.EXPIRED)
PERCENTILES: Final = (50, 90, 99)
TIMELINE_POINTS: Final = 120  # points per channel in the chart, however big the alert
MAX_THREAD: Final = 100  # follow-ups listed; a thread is a handful in practice
REASONS: Final = frozenset(r.value for r in Reason)


@dataclass(frozen=True, slots=True)
class Reach:
    channel: str
    language: str
    deliveries: int
    recipients: int  # deliveries to a listed recipient (SMS, WhatsApp, email); 0 for a post
    states: dict[str, int]  # final state -> deliveries
    delivered: int | None  # from delivery receipts; None when none came for this channel and language
    undelivered: int | None


@dataclass(frozen=True, slots=True)
class Latency:
    channel: str
    accepted: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float


@dataclass(frozen=True, slots=True)
class FailureGroup:
    reason: str  # a Reason value, "expired", or "other"
    attempts: int  # attempts that did not go out for this reason
    final: int  # of them, the ones that ended their delivery (failed or expired)
    channels: tuple[str, ...]
    example: str


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    id: str
    msg_type: str
    template: str
    sent_at: float
    first_accepted: float | None
    time_to_correct_s: float | None  # follow-ups only: the original's sent time to this one's first acceptance
    link: str | None  # its public CAP document, when the service has a public URL


@dataclass(frozen=True, slots=True)
class Report:
    alert: AlertRecord
    generated_at: float
    reach: list[Reach]
    latency: list[Latency]
    failures: list[FailureGroup]
    retries: dict[str, int]  # channel -> attempts beyond the first
    thread: list[ThreadEntry]
    messages: list[MessageRecord]
    timeline: dict[str, list[tuple[float, int]]]  # channel -> (seconds after commit, accepted so far)
    links: tuple[str, ...] = field(default=())  # the public links of the thread (the only URLs the HTML has)

    @property
    def time_to_correct_s(self) -> float | None:
        """The first correction's time to correct, when this alert's thread has one that went out."""
        for entry in self.thread:
            if entry.time_to_correct_s is not None:
                return entry.time_to_correct_s
        return None

    def as_json(self) -> dict[str, Any]:
        a = self.alert
        return {
            "alert_id": a.id, "template": a.template, "mode": str(a.mode), "msg_type": str(a.msg_type),
            "references": a.references, "sent_at": iso(a.sent_at), "generated_at": iso(self.generated_at),
            "reach": [{"channel": r.channel, "language": r.language, "deliveries": r.deliveries,
                       "recipients": r.recipients, "states": r.states, "delivered": r.delivered,
                       "undelivered": r.undelivered} for r in self.reach],
            "latency": [{"channel": x.channel, "accepted": x.accepted, "p50_s": x.p50_s, "p90_s": x.p90_s,
                         "p99_s": x.p99_s, "max_s": x.max_s} for x in self.latency],
            "failures": [{"reason": f.reason, "attempts": f.attempts, "final": f.final,
                          "channels": list(f.channels), "example": f.example} for f in self.failures],
            "retries": self.retries, "total_retries": sum(self.retries.values()),
            "time_to_correct_s": self.time_to_correct_s,
            "thread": [{"alert_id": t.id, "msg_type": t.msg_type, "template": t.template, "sent_at": iso(t.sent_at),
                        "first_accepted": iso(t.first_accepted) if t.first_accepted is not None else None,
                        "time_to_correct_s": t.time_to_correct_s, "link": t.link} for t in self.thread],
            "messages": [{"channel": m.channel_id, "language": m.language, "text": m.text} for m in self.messages],
            "timeline": {channel: [[t, n] for t, n in points] for channel, points in self.timeline.items()},
        }


@dataclass(slots=True)
class _Rows:
    """An alert's attempts, reduced to what the figures need (gathered on the loop, summed in a thread)."""

    accepted: list[tuple[str, float]] = field(default_factory=list)  # (channel, finished_at)
    not_sent: list[tuple[str, Outcome, str | None]] = field(default_factory=list)  # (channel, outcome, detail)
    retries: list[str] = field(default_factory=list)  # channel of each attempt beyond the first


async def build_report(app: App, alert_id: str, *, now: float) -> Report:
    """The report of ``alert_id``; an unknown id is an InputError naming it (exit 2, HTTP 404 on the API)."""
    store = app.store
    alert = await store.alerts.get(alert_id)
    reach_rows = await store.receipts.reach(alert.id)
    rows = _Rows()
    async for attempt in store.alerts.attempts(alert.id):
        if attempt.attempt > 1:
            rows.retries.append(attempt.channel)
        if attempt.outcome in ACCEPTED and attempt.finished_at is not None:
            rows.accepted.append((attempt.channel, attempt.finished_at))
        elif attempt.outcome in NOT_SENT:
            rows.not_sent.append((attempt.channel, attempt.outcome, attempt.detail))
    messages = await store.alerts.messages(alert.id)
    thread = await _thread(app, alert)
    reach, latency, failures, retries, timeline = await in_thread(_summarise, alert.sent_at, reach_rows, rows)
    return Report(alert=alert, generated_at=now, reach=reach, latency=latency, failures=failures, retries=retries,
                  thread=thread, messages=messages, timeline=timeline,
                  links=tuple(t.link for t in thread if t.link))


async def _thread(app: App, alert: AlertRecord) -> list[ThreadEntry]:
    """The original this alert belongs to, then every update and cancel under it, in the order they were sent."""
    store = app.store
    root = alert
    seen = {root.id}
    while root.references is not None and root.references not in seen:
        parent = await store.alerts.find(root.references)
        if parent is None:
            break
        root = parent
        seen.add(parent.id)
    members = [root]
    queue = [root.id]
    while queue and len(members) <= MAX_THREAD:
        for follow_up in await store.alerts.follow_ups(queue.pop(0)):
            if follow_up.id not in {m.id for m in members}:
                members.append(follow_up)
                queue.append(follow_up.id)
    members = [members[0], *sorted(members[1:], key=lambda m: (m.sent_at, m.id))]
    entries: list[ThreadEntry] = []
    for member in members:
        first = await store.alerts.first_accepted(member.id)
        correct = round(first - root.sent_at, 3) if first is not None and member is not root else None
        entries.append(ThreadEntry(id=member.id, msg_type=str(member.msg_type), template=member.template,
                                   sent_at=member.sent_at, first_accepted=first, time_to_correct_s=correct,
                                   link=cap_link(app, member)))
    return entries


def cap_link(app: App, alert: AlertRecord) -> str | None:
    """The alert's public CAP document (``/cap/{id}.xml``): live alerts only, where the service has a public URL."""
    base = app.config.public_url
    return f"{base.rstrip('/')}/cap/{alert.id}.xml" if base and alert.mode == Mode.LIVE else None


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _summarise(sent_at: float, reach_rows: list[tuple[str, str, str, str | None, int, int]], rows: _Rows
               ) -> tuple[list[Reach], list[Latency], list[FailureGroup], dict[str, int],
                          dict[str, list[tuple[float, int]]]]:
    return (_reach(reach_rows), _latency(sent_at, rows.accepted), _failures(rows.not_sent),
            _count(rows.retries), _timeline(sent_at, rows.accepted))


def _reach(rows: list[tuple[str, str, str, str | None, int, int]]) -> list[Reach]:
    grouped: dict[tuple[str, str], list[tuple[str, str | None, int, int]]] = {}
    for channel, language, state, final, n, recipients in rows:
        grouped.setdefault((channel, language), []).append((state, final, n, recipients))
    reach: list[Reach] = []
    for (channel, language), parts in sorted(grouped.items()):
        states: dict[str, int] = {}
        receipts = {"delivered": 0, "undelivered": 0}
        receipted = False
        for state, final, n, _recipients in parts:
            states[state] = states.get(state, 0) + n
            if final is not None and state == DeliveryState.SENT:
                receipted = True
                receipts[final] = receipts.get(final, 0) + n
        reach.append(Reach(channel=channel, language=language, deliveries=sum(p[2] for p in parts),
                           recipients=sum(p[3] for p in parts), states=dict(sorted(states.items())),
                           delivered=receipts["delivered"] if receipted else None,
                           undelivered=receipts["undelivered"] if receipted else None))
    return reach


def _latency(sent_at: float, accepted: list[tuple[str, float]]) -> list[Latency]:
    by_channel: dict[str, list[float]] = {}
    for channel, finished_at in accepted:
        by_channel.setdefault(channel, []).append(max(0.0, finished_at - sent_at))
    result: list[Latency] = []
    for channel, values in sorted(by_channel.items()):
        values.sort()
        p50, p90, p99 = (round(percentile(values, p), 3) for p in PERCENTILES)
        result.append(Latency(channel=channel, accepted=len(values), p50_s=p50, p90_s=p90, p99_s=p99,
                              max_s=round(values[-1], 3)))
    return result


def reason_of(outcome: Outcome, detail: str | None) -> str:
    """The taxonomy's Reason an attempt's stored detail starts with ("timeout: read timed out")."""
    head = (detail or "").split(":", 1)[0].strip()
    if head in REASONS:
        return head
    return "expired" if outcome == Outcome.EXPIRED else "other"


def _failures(not_sent: list[tuple[str, Outcome, str | None]]) -> list[FailureGroup]:
    groups: dict[str, tuple[int, int, set[str], str]] = {}
    for channel, outcome, detail in not_sent:
        reason = reason_of(outcome, detail)
        attempts, final, channels, example = groups.get(reason, (0, 0, set(), detail or str(outcome)))
        channels.add(channel)
        groups[reason] = (attempts + 1, final + (outcome in (Outcome.FAILED, Outcome.EXPIRED)), channels, example)
    return [FailureGroup(reason=reason, attempts=a, final=f, channels=tuple(sorted(c)), example=e)
            for reason, (a, f, c, e) in sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))]


def _count(channels: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for channel in channels:
        counts[channel] = counts.get(channel, 0) + 1
    return dict(sorted(counts.items()))


def _timeline(sent_at: float, accepted: list[tuple[str, float]]) -> dict[str, list[tuple[float, int]]]:
    by_channel: dict[str, list[float]] = {}
    for channel, finished_at in accepted:
        by_channel.setdefault(channel, []).append(max(0.0, finished_at - sent_at))
    timeline: dict[str, list[tuple[float, int]]] = {}
    for channel, offsets in sorted(by_channel.items()):
        offsets.sort()
        step = max(1, math.ceil(len(offsets) / TIMELINE_POINTS))
        points = [(round(offsets[i], 3), i + 1) for i in range(step - 1, len(offsets), step)]
        if points[-1][1] != len(offsets):
            points.append((round(offsets[-1], 3), len(offsets)))
        timeline[channel] = points
    return timeline

"""The store contract, held by SQLite and PostgreSQL alike (each test runs on both)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from broadcaster.errors import Conflict, InputError, IntegrityError, StoreTimeout
from broadcaster.states import DeliveryState, Mode, MsgType, Outcome, RunKind, RunState, StepState
from broadcaster.store import Store, alerts, open_store
from broadcaster.store.records import (
    AlertRecord,
    AttemptResult,
    AudienceCopy,
    Claimed,
    MessageRecord,
    NewDelivery,
    RunRecord,
    StepClaim,
)
from tests.store.conftest import OpenStore

T0 = 1_800_000_000.0
OWNER = "node-a:1:aaaa"
S = DeliveryState


def alert(alert_id: str = "A1", *, mode: Mode = Mode.LIVE, expires_at: float = T0 + 3600,
          references: str | None = None) -> AlertRecord:
    return AlertRecord(
        id=alert_id, template="flood_warning", template_hash="h", mode=mode,
        msg_type=MsgType.UPDATE if references else MsgType.ALERT, references=references, sent_at=T0,
        expires_at=expires_at, areas=("DXB",), channels=("sms", "tg"), inputs={"ar": {"x": "١"}, "en": {"x": "1"}},
        forms={}, created_by="test",
    )


async def batches(*chunks: Sequence[NewDelivery]) -> AsyncIterator[Sequence[NewDelivery]]:
    for chunk in chunks:
        yield chunk


async def commit(store: Store, alert_id: str = "A1", *, phones: int = 3, mode: Mode = Mode.LIVE,
                 expires_at: float = T0 + 3600, extra: list[NewDelivery] | None = None) -> tuple[int, int]:
    messages = [MessageRecord("sms/ar", "sms", "ar", "نص عربي"), MessageRecord("tg/ar", "tg", "ar", "تلغرام",
                                                                                  payload=b"\x00\x01")]
    deliveries = [NewDelivery("sms", "sms/ar", "ar", recipient=f"+9715000000{i:02d}") for i in range(phones)]
    deliveries.append(NewDelivery("tg", "tg/ar", "ar"))
    # Two batches, as a streamed list arrives: one SMS per phone holds across them.
    return await store.alerts.create(alert(alert_id, mode=mode, expires_at=expires_at), messages,
                                     batches(deliveries[:2], deliveries[2:] + (extra or [])))


def result(claimed: Claimed, state: DeliveryState, *, outcome: Outcome | None = None, at: float = T0 + 1,
           next_attempt_at: float | None = None, provider_id: str | None = None) -> AttemptResult:
    return AttemptResult(delivery_id=claimed.delivery_id, attempt_id=claimed.attempt_id,
                         outcome=outcome or Outcome(state), state=state, started_at=at - 0.25, finished_at=at,
                         http_status=200 if state == S.SENT else 503, provider_id=provider_id,
                         detail=None if state == S.SENT else "server: 503", next_attempt_at=next_attempt_at)


async def claim(store: Store, channel: str, limit: int, now: float = T0, lease_s: float = 60, owner: str = OWNER,
                **scope: Any) -> list[Claimed]:
    return await store.leases.claim(channel, limit=limit, now=now, lease_s=lease_s, owner=owner, **scope)


async def test_an_alert_commits_every_delivery_pending_and_one_sms_per_phone(store: Store) -> None:
    duplicate = NewDelivery("sms", "sms/ar", "ar", recipient="+971500000001")
    assert await commit(store, extra=[duplicate]) == (4, 1)
    assert await store.alerts.state_counts("A1") == {"sms": {"pending": 3}, "tg": {"pending": 1}}
    assert await store.alerts.get("A1") == alert()
    assert [a.id for a in await store.alerts.recent()] == ["A1"]
    assert await store.alerts.unfinished() == ["A1"]
    assert await store.alerts.count("A1") == 4


async def test_a_missing_alert_is_named(store: Store) -> None:
    with pytest.raises(InputError, match="no alert with id 'nope'"):
        await store.alerts.get("nope")
    assert await store.alerts.find("nope") is None


async def test_claim_leases_a_batch_with_its_attempts_and_never_twice(store: Store) -> None:
    await commit(store, phones=5)
    first = await claim(store, "sms", 3)
    second = await claim(store, "sms", 3, owner="node-b:2:bbbb")
    assert len(first) == 3 and len(second) == 2
    assert not {c.delivery_id for c in first} & {c.delivery_id for c in second}
    assert {c.text for c in first} == {"نص عربي"} and all(c.attempt == 1 for c in first)
    assert all(c.previous_state == S.PENDING and c.expires_at == T0 + 3600 for c in first)
    assert await claim(store, "sms", 3) == []
    assert (await store.alerts.state_counts("A1"))["sms"] == {"sending": 5}
    tg = await claim(store, "tg", 5)
    assert [(c.text, c.payload) for c in tg] == [("تلغرام", b"\x00\x01")]
    attempts = [a async for a in store.alerts.attempts("A1")]
    assert len(attempts) == 6 and {a.outcome for a in attempts} == {None}


async def test_claim_keeps_to_its_alerts_and_modes(store: Store) -> None:
    await commit(store, "LIVE", phones=2)
    await commit(store, "DRY", phones=2, mode=Mode.DRY_RUN)
    assert {c.alert_id for c in await claim(store, "sms", 10, alert_ids=("DRY",))} == {"DRY"}
    assert await claim(store, "sms", 10, modes=(Mode.DRY_RUN,)) == []
    live = await claim(store, "sms", 10, modes=(Mode.LIVE, Mode.EXERCISE))
    assert {c.alert_id for c in live} == {"LIVE"} and len(live) == 2


async def test_outcomes_are_recorded_and_retries_come_back_when_due(store: Store) -> None:
    await commit(store, phones=2)
    a, b = await claim(store, "sms", 10)
    await store.leases.record([result(a, S.SENT, provider_id="SM1"),
                               result(b, S.PENDING, outcome=Outcome.RETRY, next_attempt_at=T0 + 30)])
    assert (await store.alerts.state_counts("A1"))["sms"] == {"sent": 1, "pending": 1}
    assert await store.alerts.provider_ids("A1") == {("sms", a.recipient, "ar"): "SM1"}
    assert await store.leases.next_due("sms") == T0 + 30
    assert await claim(store, "sms", 10, now=T0 + 10) == []
    (again,) = await claim(store, "sms", 10, now=T0 + 30)
    assert again.delivery_id == b.delivery_id and again.attempt == 2
    rows = {(r.recipient, r.attempt): r async for r in store.alerts.attempts("A1")}
    assert rows[(a.recipient, 1)].outcome == Outcome.SENT and rows[(a.recipient, 1)].latency_ms == 250.0
    assert rows[(b.recipient, 1)].outcome == Outcome.RETRY and rows[(b.recipient, 2)].outcome is None
    by_phone = {d.recipient: d for d in await store.alerts.deliveries("A1")}
    assert by_phone[a.recipient].provider_id == "SM1" and by_phone[b.recipient].last_error == "server: 503"


async def test_expire_and_withdraw_touch_only_what_never_went_out(store: Store) -> None:
    await commit(store, "OLD", phones=2, expires_at=T0 + 10)
    await commit(store, "NEW", phones=2)
    (one,) = await claim(store, "sms", 1, alert_ids=("OLD",))
    await store.leases.record([result(one, S.SENT)])
    assert await store.leases.expire(T0 + 10) == 2  # one SMS and the Telegram post of OLD
    assert await store.alerts.state_counts("OLD") == {"sms": {"sent": 1, "expired": 1}, "tg": {"expired": 1}}
    assert await store.alerts.withdraw("NEW", "cancelled by C1") == 3
    assert {d.last_error for d in await store.alerts.deliveries("NEW")} == {"cancelled by C1"}
    assert await store.alerts.unfinished() == []


async def test_a_cancel_withdraws_its_original_in_its_own_commit_or_not_at_all(store: Store) -> None:
    await commit(store, "ORIG", phones=2)
    await commit(store, "TAKEN", phones=1)
    cancel_messages = [MessageRecord("sms/ar", "sms", "ar", "إلغاء")]

    async def cancel(alert_id: str) -> tuple[int, int]:
        return await store.alerts.create(alert(alert_id, references="ORIG"), cancel_messages, batches(),
                                         withdraw="ORIG")

    # A cancel whose commit fails (here: its id is taken) leaves the original exactly as it was.
    with pytest.raises(IntegrityError):
        await cancel("TAKEN")
    assert await store.alerts.state_counts("ORIG") == {"sms": {"pending": 2}, "tg": {"pending": 1}}
    await cancel("C1")
    assert await store.alerts.state_counts("ORIG") == {"sms": {"withdrawn": 2}, "tg": {"withdrawn": 1}}
    assert {d.last_error for d in await store.alerts.deliveries("ORIG")} == {"withdrawn by cancel C1"}


async def test_orphaned_leases_become_unknown_and_are_reconciled_on_the_next_claim(store: Store) -> None:
    await commit(store, phones=3)
    await claim(store, "sms", 1, owner="dead:1:x")
    await claim(store, "sms", 1, lease_s=5, owner="expired:2:y")
    await claim(store, "sms", 1, owner="alive:3:z")
    assert await store.leases.owners() == {"dead:1:x", "expired:2:y", "alive:3:z"}
    assert await store.leases.recover(T0 + 10, {"dead:1:x"}) == 2
    assert (await store.alerts.state_counts("A1"))["sms"] == {"unknown": 2, "sending": 1}
    closed = [a async for a in store.alerts.attempts("A1") if a.outcome == Outcome.UNKNOWN]
    assert len(closed) == 2 and all(a.detail == "the node ended or stalled mid-attempt" for a in closed)
    again = await claim(store, "sms", 10, now=T0 + 10)
    assert sorted(c.previous_state for c in again) == [S.UNKNOWN, S.UNKNOWN]
    assert all(c.attempt == 2 for c in again)


async def test_a_late_outcome_from_a_recovered_lease_never_moves_the_delivery(store: Store) -> None:
    await commit(store, phones=1)
    (stale,) = await claim(store, "sms", 1, lease_s=5, owner="slow:1:x")
    assert await store.leases.recover(T0 + 10, set()) == 1  # its lease ran out
    (fresh,) = await claim(store, "sms", 1, now=T0 + 10)
    await store.leases.record([result(stale, S.PENDING, outcome=Outcome.RETRY, at=T0 + 11,
                                      next_attempt_at=T0 + 20)])
    assert (await store.alerts.state_counts("A1"))["sms"] == {"sending": 1}  # still the fresh claim's
    await store.leases.record([result(fresh, S.SENT, outcome=Outcome.RECONCILED, at=T0 + 12, provider_id="SM9")])
    assert (await store.alerts.state_counts("A1"))["sms"] == {"sent": 1}
    assert [a.outcome async for a in store.alerts.attempts("A1")] == [Outcome.RETRY, Outcome.RECONCILED]


async def test_a_late_outcome_never_undoes_a_final_state(store: Store) -> None:
    await commit(store, phones=1)
    (first,) = await claim(store, "sms", 1)
    await store.leases.record([result(first, S.SENT, provider_id="SM1")])
    await store.leases.record([result(first, S.PENDING, outcome=Outcome.RETRY, next_attempt_at=T0 + 5)])
    assert (await store.alerts.state_counts("A1"))["sms"] == {"sent": 1}


async def test_large_alerts_stream_page_by_page(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "PAGE", 7)
    await commit(store, phones=20)
    await claim(store, "sms", 20)
    assert len([a async for a in store.alerts.attempts("A1")]) == 20
    assert await store.alerts.audience("A1", "sms", (S.SENDING,)) == {"ar": 20}


async def test_a_follow_up_copies_the_original_audience_inside_the_database(store: Store) -> None:
    await commit(store, phones=4)
    (sent,) = await claim(store, "sms", 1)
    await store.leases.record([result(sent, S.SENT)])
    await store.alerts.withdraw("A1", "cancelled")
    messages = [MessageRecord("sms/ar", "sms", "ar", "إلغاء"), MessageRecord("sms/en", "sms", "en", "Cancel")]
    copy = AudienceCopy("sms", "A1", (S.SENT, S.SENDING, S.UNKNOWN), {"ar": "sms/ar", "en": "sms/en"}, "ar")
    assert await store.alerts.create(alert("C1", references="A1"), messages, batches(), [copy]) == (1, 0)
    (delivery,) = await store.alerts.deliveries("C1")
    assert delivery.recipient == sent.recipient and delivery.state == S.PENDING
    (claimed,) = await claim(store, "sms", 5, alert_ids=("C1",))
    assert claimed.text == "إلغاء"


async def test_two_nodes_claiming_at_once_never_share_a_delivery(store: Store, open_more: OpenStore) -> None:
    await commit(store, phones=400)
    nodes = [await open_more(), await open_more()]
    got: list[list[int]] = [[], []]

    async def drain(i: int) -> None:
        while batch := await claim(nodes[i], "sms", 9, owner=f"n{i}:{i}:t"):
            got[i].extend(c.delivery_id for c in batch)
            await asyncio.sleep(0)

    await asyncio.gather(drain(0), drain(1))
    assert len(got[0]) + len(got[1]) == 400
    assert len(set(got[0]) | set(got[1])) == 400


async def test_nodes_beat_renew_their_leases_and_go_silent(store: Store) -> None:
    await commit(store, phones=3)
    await store.nodes.register(OWNER, "worker")
    await store.nodes.register("node-b:2:bbbb", "serve")
    await claim(store, "sms", 2, lease_s=30)
    assert await store.nodes.heartbeat(OWNER, T0 + 50) == 2
    assert await store.leases.recover(T0 + 40, set()) == 0  # renewed to T0 + 50
    assert await store.nodes.silent(60) == set()
    # node-b falls silent: its heartbeat is a minute old by the database's clock.
    await store.db.execute("UPDATE nodes SET heartbeat_at = heartbeat_at - 120 WHERE id = ?", ("node-b:2:bbbb",))
    assert await store.nodes.silent(60) == {"node-b:2:bbbb"}
    assert await store.nodes.gone({OWNER, "node-b:2:bbbb", "never:1:x"}, 60) == {"node-b:2:bbbb"}
    await store.nodes.stop("node-b:2:bbbb")
    assert await store.nodes.silent(60) == set()
    nodes = {n.id: n for n in await store.nodes.recent(60)}
    assert nodes[OWNER].leases == 2 and nodes[OWNER].lease_until == T0 + 50 and nodes[OWNER].pid == 1
    assert nodes["node-b:2:bbbb"].stopped_at is not None
    assert await store.leases.queue_depths() == {"sms": {"sending": 2, "pending": 1}, "tg": {"pending": 1}}
    assert abs(await store.nodes.now() - time.time()) < 5


async def test_send_slots_are_shared_never_overlap_and_respect_a_pause(store: Store, open_more: OpenStore) -> None:
    other = await open_more()
    first, now = await store.slots.reserve("sms", 10, 0.01)
    second, _ = await other.slots.reserve("sms", 10, 0.01)
    assert first >= now - 0.001 and second == pytest.approx(first + 0.1)
    await store.slots.pause("sms", 5.0)
    after, now2 = await other.slots.reserve("sms", 1, 0.01)
    assert after >= now2 + 4.9
    elsewhere, now3 = await store.slots.reserve("tg", 1, 0.05)
    assert elsewhere == pytest.approx(now3, abs=0.5)


async def test_the_scheduler_lead_is_one_hosts_lease(store: Store, open_more: OpenStore) -> None:
    other = await open_more()
    assert await store.leadership.try_lead("scheduler", "host-a", 30)
    assert not await other.leadership.try_lead("scheduler", "host-b", 30)
    assert await store.leadership.try_lead("scheduler", "host-a", 30)  # renewing is leading
    assert await other.leadership.holder("scheduler") == "host-a"
    await store.db.execute("UPDATE leadership SET lease_until = lease_until - 60")  # host-a stalled
    assert await store.leadership.holder("scheduler") is None
    assert await other.leadership.try_lead("scheduler", "host-b", 30)
    assert not await store.leadership.try_lead("scheduler", "host-a", 30)  # it woke up too late
    await other.leadership.release("scheduler", "host-b")
    assert await store.leadership.try_lead("scheduler", "host-a", 30)


async def test_runbook_runs_and_their_steps(store: Store) -> None:
    run = RunRecord(id="run-1", kind=RunKind.RUNBOOK, runbook="flood", source="runbooks/f.toml",
                    spec={"steps": []}, config=None, mode=Mode.DRY_RUN, inputs={"area": {"en": "DXB"}},
                    state=RunState.RUNNING, started_at=T0)
    runs = store.runs
    await runs.create(run)
    assert await runs.find("run-1") == run
    assert await runs.put_step("run-1", "warn", 0, StepState.SCHEDULED, T0 + 60)
    assert not await runs.put_step("run-1", "warn", 0, StepState.SCHEDULED, T0 + 60)
    assert [(r.step_id, r.due_at) for r in await runs.scheduled()] == [("warn", T0 + 60)]
    claim_step: dict[str, Any] = {"from_states": (StepState.SCHEDULED,), "to_state": StepState.FIRING,
                                  "owner": OWNER}
    assert await runs.move_step("run-1", "warn", 0, **claim_step)
    assert not await runs.move_step("run-1", "warn", 0, **claim_step)
    (step,) = await runs.steps("run-1")
    assert (step.state, step.owner, step.due_at) == (StepState.FIRING, OWNER, T0 + 60)
    assert await runs.scheduled() == []
    assert await runs.end("run-1", RunState.FINISHED, T0 + 90)
    assert not await runs.end("run-1", RunState.STOPPED, T0 + 91)
    assert [r.state for r in await runs.recent((RunState.FINISHED,))] == [RunState.FINISHED]
    with pytest.raises(InputError, match="no runbook run"):
        await runs.get("run-2")


async def test_a_step_alert_commits_only_while_its_claim_holds(store: Store) -> None:
    """The fencing token of a runbook step: a host that lost the step commits nothing for it."""
    run = RunRecord(id="run-1", kind=RunKind.RUNBOOK, runbook="flood", source=None, spec={"steps": []},
                    config=None, mode=Mode.LIVE, inputs={}, state=RunState.RUNNING, started_at=T0)
    await store.runs.create(run)
    await store.runs.put_step("run-1", "warn", 0, StepState.SCHEDULED, T0)
    await store.runs.move_step("run-1", "warn", 0, from_states=(StepState.SCHEDULED,), to_state=StepState.FIRING,
                               owner="host-a")
    # host-a stalls; host-b finds nothing committed and re-arms the step, then claims it itself.
    assert await store.runs.move_step("run-1", "warn", 0, from_states=(StepState.FIRING,),
                                      to_state=StepState.SCHEDULED, owner_is="host-a", uncommitted=True, owner=None)
    await store.runs.move_step("run-1", "warn", 0, from_states=(StepState.SCHEDULED,), to_state=StepState.FIRING,
                               owner="host-b")
    messages = [MessageRecord("tg/ar", "tg", "ar", "تلغرام")]
    late = StepClaim("run-1", "warn", 0, "host-a")
    with pytest.raises(Conflict, match="no longer held by host-a"):
        await store.alerts.create(alert("A-late"), messages, batches([NewDelivery("tg", "tg/ar", "ar")]), step=late)
    assert await store.alerts.find("A-late") is None  # nothing of it was committed
    mine = StepClaim("run-1", "warn", 0, "host-b")
    await store.alerts.create(alert("A-b"), messages, batches([NewDelivery("tg", "tg/ar", "ar")]), step=mine)
    (row,) = await store.runs.steps("run-1")
    assert row.alert_id == "A-b"
    # Committed: a late re-arm (as by a third host) must not make it fire again.
    assert not await store.runs.move_step("run-1", "warn", 0, from_states=(StepState.FIRING,),
                                          to_state=StepState.SCHEDULED, owner_is="host-b", uncommitted=True)


async def test_a_long_statement_elsewhere_never_stalls_the_loop(database: str, store: Store) -> None:
    """A query that waits on the database leaves this event loop free (ticks keep coming on time)."""
    if store.db.dialect == "sqlite":
        pytest.skip("SQLite answers inline: there is no server to wait for")
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await store.db.execute("SELECT pg_sleep(0.5)")
    task.cancel()
    assert time.monotonic() - started >= 0.5
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 20 and max(gaps) < 0.1  # the loop kept turning while the statement ran


async def test_a_statement_past_the_command_timeout_is_a_retryable_store_error(database: str) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("a command timeout is PostgreSQL's")
    from broadcaster.store.postgres_db import PgDatabase

    db = await PgDatabase.connect(database, command_timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(StoreTimeout) as caught:
            await db.execute("SELECT pg_sleep(5)")
        assert caught.value.retryable and time.monotonic() - started < 4
        assert (await db.execute("SELECT 1 AS one")).scalar() == 1  # the pool is usable again
    finally:
        await db.close()


async def test_a_store_can_be_reopened_and_sees_what_was_committed(database: str, store: Store) -> None:
    await commit(store, phones=2)
    again = await open_store(database)
    try:
        assert await again.alerts.count("A1") == 3
    finally:
        await again.close()

"""The store contract, held by SQLite and PostgreSQL alike (each test runs on both)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from broadcaster.errors import InputError
from broadcaster.runbooks.records import RunRecord
from broadcaster.store import AlertRecord, MessageRecord, NewDelivery, Outcome, Store, common
from tests.store.conftest import OpenStore

T0 = 1_800_000_000.0
OWNER = "node-a:1:aaaa"


def alert(alert_id: str = "A1", *, mode: str = "live", expires_at: float = T0 + 3600) -> AlertRecord:
    return AlertRecord(
        id=alert_id, template="flood_warning", template_hash="h", mode=mode, msg_type="Alert", references=None,
        sent_at=T0, expires_at=expires_at, areas=("DXB",), channels=("sms", "tg"),
        inputs={"ar": {"x": "١"}, "en": {"x": "1"}}, forms={}, created_by="test",
    )


def commit(store: Store, alert_id: str = "A1", *, phones: int = 3, mode: str = "live",
           expires_at: float = T0 + 3600, extra: list[NewDelivery] | None = None) -> tuple[int, int]:
    messages = [MessageRecord("sms/ar", "sms", "ar", "نص عربي"), MessageRecord("tg/ar", "tg", "ar", "تلغرام",
                                                                                  payload=b"\x00\x01")]
    deliveries = [NewDelivery("sms", "sms/ar", "ar", recipient=f"+9715000000{i:02d}") for i in range(phones)]
    deliveries.append(NewDelivery("tg", "tg/ar", "ar"))
    return store.create_alert(alert(alert_id, mode=mode, expires_at=expires_at), messages,
                              deliveries + (extra or []))


def outcome(claimed: Any, state: str, *, outcome: str | None = None, at: float = T0 + 1,
            next_attempt_at: float | None = None, provider_id: str | None = None) -> Outcome:
    return Outcome(delivery_id=claimed.delivery_id, attempt_id=claimed.attempt_id, outcome=outcome or state,
                   state=state, started_at=at - 0.25, finished_at=at, http_status=200 if state == "sent" else 503,
                   provider_id=provider_id, detail=None if state == "sent" else "server: 503",
                   next_attempt_at=next_attempt_at)


def test_an_alert_commits_every_delivery_pending_and_one_sms_per_phone(store: Store) -> None:
    duplicate = NewDelivery("sms", "sms/ar", "ar", recipient="+971500000001")
    assert commit(store, extra=[duplicate]) == (4, 1)
    assert store.state_counts("A1") == {"sms": {"pending": 3}, "tg": {"pending": 1}}
    assert store.alert("A1") == alert()
    assert [a.id for a in store.alerts()] == ["A1"]
    assert store.unfinished_alerts() == ["A1"]


def test_a_missing_alert_is_named(store: Store) -> None:
    with pytest.raises(InputError, match="no alert with id 'nope'"):
        store.alert("nope")


def test_claim_leases_a_batch_with_its_attempts_and_never_twice(store: Store) -> None:
    commit(store, phones=5)
    first = store.claim("sms", None, 3, T0, 60, OWNER)
    second = store.claim("sms", None, 3, T0, 60, "node-b:2:bbbb")
    assert len(first) == 3 and len(second) == 2
    assert not {c.delivery_id for c in first} & {c.delivery_id for c in second}
    assert {c.text for c in first} == {"نص عربي"} and all(c.attempt == 1 for c in first)
    assert all(c.previous_state == "pending" and c.expires_at == T0 + 3600 for c in first)
    assert store.claim("sms", None, 3, T0, 60, OWNER) == []
    assert store.state_counts("A1")["sms"] == {"sending": 5}
    tg = store.claim("tg", None, 5, T0, 60, OWNER)
    assert [(c.text, c.payload) for c in tg] == [("تلغرام", b"\x00\x01")]
    attempts = list(store.attempts("A1"))
    assert len(attempts) == 6 and {a.outcome for a in attempts} == {None}


def test_claim_keeps_to_its_alerts_and_modes(store: Store) -> None:
    commit(store, "LIVE", phones=2)
    commit(store, "DRY", phones=2, mode="dry-run")
    assert {c.alert_id for c in store.claim("sms", ("DRY",), 10, T0, 60, OWNER)} == {"DRY"}
    assert store.claim("sms", None, 10, T0, 60, OWNER, modes=("dry-run",)) == []
    live = store.claim("sms", None, 10, T0, 60, OWNER, modes=("live", "exercise"))
    assert {c.alert_id for c in live} == {"LIVE"} and len(live) == 2


def test_outcomes_are_recorded_and_retries_come_back_when_due(store: Store) -> None:
    commit(store, phones=2)
    a, b = store.claim("sms", None, 10, T0, 60, OWNER)
    store.record([outcome(a, "sent", provider_id="SM1"),
                  outcome(b, "pending", outcome="retry", next_attempt_at=T0 + 30)])
    assert store.state_counts("A1")["sms"] == {"sent": 1, "pending": 1}
    assert store.provider_ids("A1") == {("sms", a.recipient, "ar"): "SM1"}
    assert store.next_due("sms", None) == T0 + 30
    assert store.claim("sms", None, 10, T0 + 10, 60, OWNER) == []
    (again,) = store.claim("sms", None, 10, T0 + 30, 60, OWNER)
    assert again.delivery_id == b.delivery_id and again.attempt == 2
    rows = {(r.recipient, r.attempt): r for r in store.attempts("A1")}
    assert rows[(a.recipient, 1)].outcome == "sent" and rows[(a.recipient, 1)].latency_ms == 250.0
    assert rows[(b.recipient, 1)].outcome == "retry" and rows[(b.recipient, 2)].outcome is None
    by_phone = {d.recipient: d for d in store.deliveries("A1")}
    assert by_phone[a.recipient].provider_id == "SM1" and by_phone[b.recipient].last_error == "server: 503"


def test_expire_and_withdraw_touch_only_what_never_went_out(store: Store) -> None:
    commit(store, "OLD", phones=2, expires_at=T0 + 10)
    commit(store, "NEW", phones=2)
    (one,) = store.claim("sms", ("OLD",), 1, T0, 60, OWNER)
    store.record([outcome(one, "sent")])
    assert store.expire(T0 + 10) == 2  # one SMS and the Telegram post of OLD
    assert store.state_counts("OLD") == {"sms": {"sent": 1, "expired": 1}, "tg": {"expired": 1}}
    assert store.withdraw("NEW", "cancelled by C1") == 3
    assert {d.last_error for d in store.deliveries("NEW")} == {"cancelled by C1"}
    assert store.unfinished_alerts() == []


def test_orphaned_leases_become_unknown_and_are_reconciled_on_the_next_claim(store: Store) -> None:
    commit(store, phones=3)
    store.claim("sms", None, 1, T0, 60, "dead:1:x")
    store.claim("sms", None, 1, T0, 5, "expired:2:y")
    store.claim("sms", None, 1, T0, 60, "alive:3:z")
    assert store.recover_orphans(T0 + 10, lambda owner: owner.startswith("dead")) == 2
    assert store.state_counts("A1")["sms"] == {"unknown": 2, "sending": 1}
    closed = [a for a in store.attempts("A1") if a.outcome == "unknown"]
    assert len(closed) == 2 and all(a.detail == "process ended mid-attempt" for a in closed)
    again = store.claim("sms", None, 10, T0 + 10, 60, OWNER)
    assert sorted(c.previous_state for c in again) == ["unknown", "unknown"]
    assert all(c.attempt == 2 for c in again)


def test_a_late_outcome_from_a_recovered_lease_never_moves_the_delivery(store: Store) -> None:
    commit(store, phones=1)
    (stale,) = store.claim("sms", None, 1, T0, 5, "slow:1:x")
    assert store.recover_orphans(T0 + 10, lambda _owner: False) == 1  # its lease ran out
    (fresh,) = store.claim("sms", None, 1, T0 + 10, 60, OWNER)
    store.record([outcome(stale, "pending", outcome="retry", at=T0 + 11, next_attempt_at=T0 + 20)])
    assert store.state_counts("A1")["sms"] == {"sending": 1}  # still the fresh claim's
    store.record([outcome(fresh, "sent", outcome="reconciled", at=T0 + 12, provider_id="SM9")])
    assert store.state_counts("A1")["sms"] == {"sent": 1}
    assert [a.outcome for a in store.attempts("A1")] == ["retry", "reconciled"]  # both attempts told truly


def test_large_alerts_stream_page_by_page(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "PAGE", 7)
    commit(store, phones=20)
    phones = [p for p, _ in store.recipients("A1", "sms", ("pending",))]
    assert phones == [f"+9715000000{i:02d}" for i in range(20)]
    store.claim("sms", None, 20, T0, 60, OWNER)
    assert len(list(store.attempts("A1"))) == 20


def test_two_nodes_claiming_at_once_never_share_a_delivery(store: Store, open_more: OpenStore) -> None:
    commit(store, phones=400)
    nodes = [open_more(), open_more()]
    got: list[list[int]] = [[], []]

    def drain(i: int) -> None:
        while batch := nodes[i].claim("sms", None, 9, T0, 60, f"n{i}:{i}:t"):
            got[i].extend(c.delivery_id for c in batch)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got[0]) + len(got[1]) == 400
    assert len(set(got[0]) | set(got[1])) == 400


def test_nodes_beat_renew_their_leases_and_go_stale(store: Store) -> None:
    commit(store, phones=3)
    store.register_node(OWNER, "worker", T0)  # type: ignore[attr-defined]
    store.register_node("node-b:2:bbbb", "serve", T0)  # type: ignore[attr-defined]
    store.claim("sms", None, 2, T0, 30, OWNER)
    assert store.heartbeat(OWNER, T0 + 20, 30) == 2  # type: ignore[attr-defined]
    assert store.recover_orphans(T0 + 40, lambda _owner: False) == 0  # renewed to T0 + 50
    assert store.stale_nodes(T0 + 10) == {"node-b:2:bbbb"}  # type: ignore[attr-defined]
    store.stop_node("node-b:2:bbbb", T0 + 21)  # type: ignore[attr-defined]
    nodes = {n.id: n for n in store.nodes(T0 + 15)}  # type: ignore[attr-defined]
    assert nodes[OWNER].leases == 2 and nodes[OWNER].lease_until == T0 + 50 and nodes[OWNER].pid == 1
    assert nodes["node-b:2:bbbb"].stopped_at == T0 + 21
    assert store.stale_nodes(T0 + 100) == {OWNER}  # type: ignore[attr-defined]
    assert store.queue_depths() == {"sms": {"sending": 2, "pending": 1}, "tg": {"pending": 1}}  # type: ignore[attr-defined]


def test_send_slots_are_shared_never_overlap_and_respect_a_pause(store: Store, open_more: OpenStore) -> None:
    other = open_more()
    first, now = store.reserve_slots("sms", 10, 0.01)
    second, _ = other.reserve_slots("sms", 10, 0.01)
    assert first >= now - 0.001 and second == pytest.approx(first + 0.1)
    store.pause_slots("sms", 5.0)
    after, now2 = other.reserve_slots("sms", 1, 0.01)
    assert after >= now2 + 4.9
    elsewhere, now3 = store.reserve_slots("tg", 1, 0.05)
    assert elsewhere == pytest.approx(now3, abs=0.5)


def test_runbook_runs_and_their_steps(store: Store) -> None:
    run = RunRecord(id="run-1", kind="runbook", runbook="flood", source="runbooks/f.toml", spec={"steps": []},
                    config=None, mode="dry-run", inputs={"area": "DXB"}, state="running", started_at=T0)
    store.create_run(run)  # type: ignore[attr-defined]
    assert store.find_run("run-1") == run  # type: ignore[attr-defined]
    assert store.put_run_step("run-1", "warn", 0, "scheduled", T0 + 60)  # type: ignore[attr-defined]
    assert not store.put_run_step("run-1", "warn", 0, "scheduled", T0 + 60)  # type: ignore[attr-defined]
    claim = {"from_states": ("scheduled",), "to_state": "firing", "owner": OWNER}
    assert store.move_run_step("run-1", "warn", 0, **claim)  # type: ignore[attr-defined]
    assert not store.move_run_step("run-1", "warn", 0, **claim)  # type: ignore[attr-defined]
    (step,) = store.run_steps("run-1")  # type: ignore[attr-defined]
    assert (step.state, step.owner, step.due_at) == ("firing", OWNER, T0 + 60)
    assert store.end_run("run-1", "finished", T0 + 90)  # type: ignore[attr-defined]
    assert not store.end_run("run-1", "stopped", T0 + 91)  # type: ignore[attr-defined]
    assert [r.state for r in store.runs(("finished",))] == ["finished"]  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="no runbook run"):
        store.run("run-2")  # type: ignore[attr-defined]

"""Several worker processes on one PostgreSQL database, against the loopback fakes.

Two workers share a fan-out without ever claiming one delivery twice; a worker
killed with SIGKILL mid-fan-out loses nothing and doubles nothing, because the
survivor recovers its leases and reconciles with Twilio before any resend; the
channel's rate holds across both.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.store import Store, upgrade_database
from tests.engine.providers import SECRETS, Providers
from tests.support import Reader, read, token_file

pytestmark = pytest.mark.slow
DEADLINE_S = 120  # generous: only a hang reaches it


@pytest.fixture
def url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated PostgreSQL database; the providers' secrets are in the environment the workers inherit."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    asyncio.run(upgrade_database(pg_url))
    return pg_url


@contextmanager
def workers(p: Providers, url: str, count: int, *channels: str,
            options: tuple[str, ...] = ()) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` `broadcaster worker` processes, registered before the block starts."""
    env = {**os.environ, **SECRETS}
    args = [sys.executable, "-m", "broadcaster", "--config", str(p.config), "--db", url, "worker",
            "--channels", ",".join(channels), *options]
    logs = [p.tmp_path / f"worker-{i}.log" for i in range(count)]
    procs = []
    for log in logs:
        with log.open("wb") as handle:  # the child keeps its own copy of the file descriptor
            procs.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=handle))
    LOGS.update({id(proc): log for proc, log in zip(procs, logs, strict=True)})
    try:
        wait_for(lambda: live_workers(url) >= count, procs, "the workers never registered")
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
        for proc in procs:
            LOGS.pop(id(proc), None)


def live_workers(url: str) -> int:
    nodes = read(url, lambda store: store.nodes.recent(5))
    return sum(1 for n in nodes if n.role == "worker" and n.stopped_at is None)


LOGS: dict[int, Any] = {}  # id(worker process) -> its stderr file, for failure messages


def tails(procs: list[subprocess.Popen[bytes]]) -> str:
    return "\n".join(f"--- {LOGS[id(proc)].name} (exit {proc.poll()}):\n" + "\n".join(
        LOGS[id(proc)].read_text(errors="replace").splitlines()[-25:]) for proc in procs if id(proc) in LOGS)


def wait_for(done: Any, procs: list[subprocess.Popen[bytes]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        for proc in procs:
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                raise AssertionError(f"a worker exited with {proc.returncode}:\n{tails(procs)}")
        assert time.monotonic() < deadline, f"{what}\n{tails(procs)}"
        time.sleep(0.05)


def queue(p: Providers, url: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    officer = token_file(p.tmp_path, url, "officer")
    assert main(["--config", str(p.config), "--db", url, "--token-file", str(officer), "fire", "road_closure",
                 "--use-examples", "--live", "--yes", "--queue", "--json", "--channels", "sms-residents"]) == 0
    out: dict[str, Any] = orjson.loads(capsys.readouterr().out)
    return str(out["alert_id"])


def sent(url: str, alert_id: str) -> dict[str, int]:
    return Reader(url).state_counts(alert_id).get("sms-residents", {})


def rows(url: str, sql: str, *params: object) -> list[Any]:
    async def fetch(store: Store) -> list[Any]:
        return (await store.db.execute(sql, params)).rows

    return read(url, fetch)


def attempts_by_node(url: str, alert_id: str) -> tuple[Counter[str], Counter[int]]:
    found = rows(url, "SELECT a.node AS node, a.delivery_id AS delivery_id FROM attempts a"
                      " JOIN deliveries d ON d.id = a.delivery_id WHERE d.alert_id = ?", alert_id)
    return Counter(r["node"] for r in found), Counter(r["delivery_id"] for r in found)


def one_sms_each(p: Providers, url: str | None = None) -> None:
    per_phone = Counter(m["to"] for m in p.twilio.messages)
    assert sorted(per_phone) == sorted(p.phones), "a phone got no SMS"
    twice = [k for k, v in per_phone.items() if v > 1]
    if twice and url is not None:  # say what happened to them, for whoever reads the failure
        detail = [(phone, [m["date_created"].isoformat() for m in p.twilio.messages_to(phone)],
                   [dict(r) for r in rows(url, "SELECT a.node, a.attempt, a.outcome, a.started_at, a.finished_at,"
                                              " a.detail FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                                              " WHERE d.recipient = ?", phone)]) for phone in twice[:3]]
        raise AssertionError(f"{len(twice)} phone(s) got two SMS: {detail}")
    assert not twice, twice[:5]


def caught_between_look_and_write(p: Providers, url: str, pid: int, stopped: float, resumed: float) -> int:
    """How many phones got a second SMS, each only in the one window the fence cannot close; fail on any other.

    The gate looks once a request has its connection, microseconds before its bytes are written. A stall that
    lands between the two lets that one request out when the node wakes, after its new owner reconciled (found
    nothing) and resent. Such a second SMS comes from an attempt of the stalled node that started before the
    stop and finished after it; any other double (a fresh send by the woken node, two sends by the survivor)
    is a failure of the fence or the lease.
    """
    per_phone = Counter(m["to"] for m in p.twilio.messages)
    assert sorted(per_phone) == sorted(p.phones), "a phone got no SMS"
    twice = [phone for phone, n in per_phone.items() if n > 1]
    for phone in twice:
        attempts = [dict(r) for r in rows(url, "SELECT a.node, a.outcome, a.started_at, a.finished_at"
                                               " FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                                               " WHERE d.recipient = ?", phone)]
        straddling = [a for a in attempts if f":{pid}:" in a["node"] and a["started_at"] < stopped
                      and (a["finished_at"] or 0) > resumed]
        assert per_phone[phone] == 2 and straddling, \
            f"{phone} got {per_phone[phone]} SMS outside that window: {attempts}"
    return len(twice)


def test_two_workers_share_5000_sms_and_never_claim_one_twice(
    tmp_path: Any, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=5000, latency=0.002, sms_rate=5000) as p, \
            workers(p, url, 2, "sms-residents") as procs:
        alert_id = queue(p, url, capsys)
        wait_for(lambda: sent(url, alert_id) == {"sent": 5000}, procs, "the fan-out never finished")
        by_node, by_delivery = attempts_by_node(url, alert_id)
        one_sms_each(p)
    assert len(by_node) == 2 and min(by_node.values()) > 0, by_node  # both workers took a share
    assert sum(by_node.values()) == 5000 and set(by_delivery.values()) == {1}  # one attempt per delivery


def test_a_worker_killed_mid_fan_out_loses_nothing_and_doubles_nothing(
    tmp_path: Any, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    recipients = 2000
    with Providers(tmp_path, recipients=recipients, latency=0.02, sms_rate=400) as p, \
            workers(p, url, 2, "sms-residents") as procs:
        alert_id = queue(p, url, capsys)
        wait_for(lambda: len(p.twilio.messages) >= 400, procs, "the fan-out never got going")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        killed_at = len(p.twilio.messages)
        assert killed_at < recipients, "killed too late to test anything"
        wait_for(lambda: sent(url, alert_id) == {"sent": recipients}, procs[1:], "the survivor never finished")
        by_node, _ = attempts_by_node(url, alert_id)
        one_sms_each(p)
    assert len(p.twilio.messages) == recipients
    assert len(by_node) == 2  # the dead worker had claimed some: the survivor reconciled and finished them


# Short node timings for the stall test: a node silent for 3 s is dead; a node trusts its leases for 2 s
# after its last heartbeat left (the margin is a third of --dead-after).
QUICK_NODES = ("--heartbeat", "0.5", "--dead-after", "3")
STALL_S = 5.0  # longer than --dead-after: the other node recovers the stalled node's leases meanwhile


@pytest.mark.parametrize("stall_at", [150, 700, 1300])
def test_a_worker_stalled_past_its_lease_gets_no_phone_a_second_sms(
    tmp_path: Any, url: str, capsys: pytest.CaptureFixture[str], stall_at: int
) -> None:
    """SIGSTOP one of two workers mid-fan-out for longer than the dead-node threshold, then continue it.

    The survivor recovers its leases and reconciles with Twilio; the stalled node, waking with its
    leases expired by its own clock, sends nothing of the batch it held and rejoins as a new node.
    """
    recipients = 2000
    with Providers(tmp_path, recipients=recipients, latency=0.02, sms_rate=400) as p, \
            workers(p, url, 2, "sms-residents", options=QUICK_NODES) as procs:
        alert_id = queue(p, url, capsys)
        wait_for(lambda: len(p.twilio.messages) >= stall_at, procs, "the fan-out never got going")
        victim = procs[stall_at % 2]
        victim.send_signal(signal.SIGSTOP)
        stopped_wall = time.time()
        stopped_at = len(p.twilio.messages)
        try:
            time.sleep(STALL_S)
        finally:
            resumed_wall = time.time()
            victim.send_signal(signal.SIGCONT)
        assert stopped_at < recipients, "stalled too late to test anything"
        wait_for(lambda: sent(url, alert_id) == {"sent": recipients}, procs, "the fan-out never finished")
        time.sleep(0.5)  # anything the woken node still wanted to send would arrive now
        doubles = caught_between_look_and_write(p, url, victim.pid, stopped_wall, resumed_wall)
        assert len(p.twilio.messages) == recipients + doubles
        held = rows(url, "SELECT COUNT(*) AS n FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                         " WHERE d.alert_id = ? AND a.node LIKE ? AND a.outcome = 'unknown'",
                    alert_id, f"%:{victim.pid}:%")[0]["n"]

        def lives() -> int:
            return int(rows(url, "SELECT COUNT(*) AS n FROM nodes WHERE pid = ?", victim.pid)[0]["n"])

        # The woken node notices its stall at its next heartbeat, which may come after the fan-out finished.
        wait_for(lambda: lives() >= 2, procs, "the woken node did not notice its stall and rejoin under a new id")
    assert held > 0, "the stalled node held nothing unsent: the stall tested nothing"


def test_the_rate_holds_across_two_workers(
    tmp_path: Any, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rate, count = 100, 300
    with Providers(tmp_path, recipients=count, latency=0.002, sms_rate=rate) as p, \
            workers(p, url, 2, "sms-residents") as procs:
        alert_id = queue(p, url, capsys)
        wait_for(lambda: sent(url, alert_id) == {"sent": count}, procs, "the fan-out never finished")
        found = rows(url, "SELECT a.node AS node, a.started_at AS started_at FROM attempts a"
                          " JOIN deliveries d ON d.id = a.delivery_id WHERE d.alert_id = ? ORDER BY a.started_at",
                     alert_id)
        one_sms_each(p)
    assert len({r["node"] for r in found}) == 2  # both workers sent
    starts = [r["started_at"] for r in found]
    busiest = max(bisect.bisect_left(starts, at + 1.0) - i for i, at in enumerate(starts))
    # Both nodes draw slots 1/rate apart from one ledger. A slot may be taken up to one interval
    # late (never later: older ones are dropped), so a one-second window holds at most rate + 2 sends.
    assert busiest <= rate + 2, busiest


def worker_backends(url: str, since: float = 0.0) -> int:
    """Sessions of other processes on this database that started after ``since`` (unix seconds)."""
    (row,) = rows(url, "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid() AND extract(epoch FROM backend_start) > ?", since)
    return int(row["n"])


def test_a_worker_that_loses_the_database_reconnects_and_delivers(
    tmp_path: Any, url: str, pg_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    database = url.rsplit("/", 1)[1]
    with Providers(tmp_path, recipients=50, latency=0.002, sms_rate=500) as p, \
            workers(p, url, 1, "sms-residents") as procs:
        assert worker_backends(url) >= 2  # its pooled connections, LISTEN among them
        # A database restart, as the worker sees it: every one of its connections is cut.
        cut_at = time.time()
        pg_server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          f" WHERE datname = '{database}' AND pid <> pg_backend_pid()")
        alert_id = queue(p, url, capsys)
        wait_for(lambda: sent(url, alert_id) == {"sent": 50}, procs, "the worker never came back")
        one_sms_each(p)
        assert worker_backends(url, since=cut_at) >= 1  # it connected again

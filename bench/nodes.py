"""Several nodes on one database: `broadcaster worker` processes against the loopback fakes.

Scenarios 6, 8 and 9 of ``python -m bench`` (7 is in ``bench.__main__``: it is a
``bench.sms`` fire). Everything here runs the shipped code as an operator would:

* a throwaway PostgreSQL cluster (``tests.pgserver.PgServer``: tmpfs, fsync off),
  one fresh, migrated database per run;
* ``python -m broadcaster --config … --db URL worker --channels … --poll …``
  subprocesses with the fake secrets in their environment, started first and
  waited for until each has registered in the ``nodes`` table (what
  ``broadcaster nodes`` lists);
* the alert is committed from this process exactly as ``fire --queue`` does it
  (``plan_alert`` then ``outbox.commit``: the alert, its deliveries and, on
  PostgreSQL, the ``NOTIFY`` in one transaction), so the commit has a precise
  ``time.monotonic()`` stamp; then this process only watches.

CPU use of every process is read from ``/proc/<pid>/stat`` (utime + stime)
before and after the measured window, so each figure can be set against the
machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fakes import max_in_window
from bench.harness import (
    REPO,
    TEMPLATE,
    ProviderProcess,
    sms_channel,
    telegram_channel,
    webhook_channel,
    write_channels,
    write_recipients,
    x_channel,
)
from bench.observer import Observer
from bench.report import add, heading, say
from broadcaster.app.context import load
from broadcaster.engine.outbox import commit, plan_alert
from broadcaster.states import Mode
from broadcaster.store import Store, upgrade_database
from broadcaster.templates.variables import example_inputs
from tests.support import read

KINDS = ("x", "telegram", "sms", "webhook")
LABEL = {"x": "X", "telegram": "Telegram", "sms": "SMS (Twilio)", "webhook": "webhook"}
SMS_CHANNEL = "sms-residents"
STALL_S = 60.0  # no progress for this long: something is broken, stop with the workers' stderr
POLL_S = 0.05  # how often this process looks at the fake's count and the database
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


# --- PostgreSQL -------------------------------------------------------------------------


class Cluster:
    """A throwaway PostgreSQL server, started on first use; ``fresh()`` is a new migrated database."""

    def __init__(self) -> None:
        self.server: Any = None
        self.error: str | None = None

    def available(self) -> bool:
        if self.server is None and self.error is None:
            try:
                from tests.pgserver import PgServer

                self.server = PgServer().start()
            except Exception as exc:  # no binaries, no postgres user, ...: the PG scenarios are skipped
                self.error = f"{type(exc).__name__}: {exc}"
        return self.server is not None

    def fresh(self) -> str:
        assert self.available(), self.error
        url: str = self.server.create_database()
        migrated(url)
        return url

    def describe(self) -> str:
        s = self.server
        return (f"PostgreSQL {s.major_version} ({s.bindir}), data on {s.datadir.parent.parent}, "
                f"{', '.join(f'{k}={v}' for k, v in s.settings.items() if k in ('fsync', 'synchronous_commit'))}")

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, WAL writer, checkpointer, ...)."""
        if self.server is None:
            return []
        try:
            postmaster = int((self.server.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [postmaster, *children(postmaster)]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def migrated(database: str) -> str:
    asyncio.run(upgrade_database(database))
    return database


# --- CPU accounting ---------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may hold spaces


def cpu_seconds(pid: int) -> float | None:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else None  # utime + stime


def children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[1]) == parent:
                found.append(int(entry))
    return found


class CpuMeter:
    """CPU seconds per named group of processes between ``start()`` and ``stop()``."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.seconds: dict[str, float] = {}
        self.wall = 0.0
        self._t0 = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            if name == "bench":  # this process: os.times() counts every thread (the PostgreSQL bridge too)
                t = os.times()
                out[name] = {0: t.user + t.system}
                continue
            out[name] = {pid: cpu for pid in pids() if (cpu := cpu_seconds(pid)) is not None}
        return out

    def start(self) -> None:
        self._t0 = time.monotonic()
        self.before = self._sample()

    def stop(self) -> None:
        self.wall = time.monotonic() - self._t0
        after = self._sample()
        # A process born inside the window counts from 0; one that died in it is lost (none should).
        self.seconds = {name: sum(cpu - self.before.get(name, {}).get(pid, 0.0) for pid, cpu in after[name].items())
                        for name in after}

    def lines(self) -> list[str]:
        parts = [f"{name} {s:.1f} s ({s / self.wall:.0%})" for name, s in self.seconds.items()]
        total = sum(self.seconds.values())
        return [f"CPU in the {self.wall:.1f} s window (share of one core): " + ", ".join(parts),
                f"total {total:.1f} CPU-s = {total / (self.wall * CORES):.0%} of {CORES} cores"]


# --- worker processes -------------------------------------------------------------------


def live_workers(database: str) -> int:
    nodes = read(database, lambda store: store.nodes.recent(5))
    return sum(1 for n in nodes if n.role == "worker" and n.stopped_at is None)


def stderr_tail(logs: list[Path], lines: int = 15) -> str:
    out = []
    for path in logs:
        with contextlib.suppress(OSError):
            out.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(out)


@dataclass
class Workers:
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {proc.returncode}:\n{stderr_tail(self.logs)}")


@contextlib.contextmanager
def workers(config: Path, database: str, count: int, channels: list[str], poll: float,
            logdir: Path, groups: list[list[str]] | None = None) -> Iterator[Workers]:
    """``count`` `broadcaster worker` processes, each registered (in ``nodes``) before the block starts.

    Each serves ``channels``, or with ``groups`` worker *i* serves ``groups[i]``.
    """
    per_worker = groups or [channels] * count
    logs = [logdir / f"worker-{i + 1}.stderr" for i in range(count)]
    procs: list[subprocess.Popen[bytes]] = []
    for log, served in zip(logs, per_worker, strict=True):
        args = [sys.executable, "-m", "broadcaster", "--config", str(config), "--db", database, "worker",
                "--channels", ",".join(served), "--poll", str(poll)]
        with log.open("wb") as handle:  # the child keeps its own descriptor
            procs.append(subprocess.Popen(args, cwd=REPO, env=dict(os.environ), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=handle))
    running = Workers(procs, logs)
    try:
        deadline = time.monotonic() + STALL_S
        while live_workers(database) < count:
            running.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers never registered:\n{stderr_tail(logs)}")
            time.sleep(POLL_S)
        yield running
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- committing as `fire --queue` does, and watching ------------------------------------


@dataclass
class Committed:
    alert_id: str
    created: int
    plan_s: float
    commit_s: float
    commit: float  # time.monotonic() right after the outbox COMMIT returned


def commit_alert(store: Observer, config: Path, database: str, selection: str = "all") -> Committed:
    """plan_alert + outbox commit, as ``broadcaster fire TEMPLATE --use-examples --live --yes --queue``."""
    checked, catalogue, _ = load(str(config), database)

    async def go(db: Store) -> Committed:
        t0 = time.monotonic()
        now = time.time()
        plan = await plan_alert(checked, catalogue, TEMPLATE, example_inputs(catalogue.get(TEMPLATE), now,
                                                                             checked.timezone),
                                mode=Mode.LIVE, now=now, selection=selection)
        t1 = time.monotonic()
        created, _skipped = await commit(db, plan)
        t2 = time.monotonic()
        return Committed(plan.alert.id, created, t1 - t0, t2 - t1, t2)

    return store.call(go)


def sql(store: Observer, statement: str, *params: object) -> list[Any]:
    async def go(db: Store) -> list[Any]:
        return [tuple(r) for r in (await db.db.execute(statement, params)).rows]

    return store.call(go)


def state_counts(store: Observer, alert_id: str) -> dict[str, dict[str, int]]:
    return store.call(lambda db: db.alerts.state_counts(alert_id))


def unfinished(store: Observer, channel_id: str) -> int:
    """Deliveries of ``channel_id`` not yet finished (this database holds one alert): the due index answers."""
    (row,) = sql(store, "SELECT COUNT(*) FROM deliveries WHERE channel_id = ?"
                        " AND state IN ('pending', 'sending', 'unknown')", channel_id)
    return int(row[0])


def wait_all_done(providers: ProviderProcess, store: Observer, running: Workers, kind: str, channel_id: str,
                  expected: int) -> float:
    """Poll every 50 ms until every delivery of ``channel_id`` is finished; returns the stamp when seen.

    While requests are still arriving it polls the fake's request count (a pipe round trip to the provider
    process); once the fake has them all it polls the database's count of unfinished deliveries, so the
    poller costs PostgreSQL nothing while the run is in full flow.
    """
    _poll_until(lambda: providers.count()[kind], lambda arrived: arrived >= expected, running,
                lambda arrived: f"stalled at {arrived}/{expected} requests")
    _poll_until(lambda: unfinished(store, channel_id), lambda left: left == 0, running,
                lambda left: f"stalled with {left} unfinished")
    return time.monotonic()


def _poll_until(read: Callable[[], int], done: Callable[[int], bool], running: Workers,
                stalled: Callable[[int], str]) -> None:
    """Read every POLL_S until ``done``; fail with the workers' stderr if the reading stops moving for STALL_S."""
    last_progress, last_seen = time.monotonic(), -1
    while not done(seen := read()):
        running.check()
        if seen != last_seen:
            last_progress, last_seen = time.monotonic(), seen
        elif time.monotonic() - last_progress > STALL_S:
            raise RuntimeError(f"{stalled(seen)}:\n{stderr_tail(running.logs)}")
        time.sleep(POLL_S)


def by_node(store: Observer) -> dict[str, tuple[int, int]]:
    """``node -> (attempt rows, distinct deliveries)`` over the database's one alert."""
    rows = sql(store, "SELECT node, COUNT(*), COUNT(DISTINCT delivery_id) FROM attempts GROUP BY node")
    return {str(node): (int(n), int(d)) for node, n, d in rows}


# --- 6. one node vs two nodes -----------------------------------------------------------


def sms_config(directory: Path, sms_url: str, count: int, rate: float) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_recipients(directory / "residents.csv", count)
    return write_channels(directory, [sms_channel(SMS_CHANNEL, sms_url, "residents.csv", rate)])


def run_nodes(providers: ProviderProcess, cluster: Cluster, config: Path, directory: Path, nodes: int, n: int,
              jitter: tuple[float, float]) -> dict[str, Any]:
    """``nodes`` workers on a fresh database deliver one alert of ``n`` SMS; timed from commit to all sent."""
    database = cluster.fresh()
    logdir = directory / f"{nodes}-node"
    logdir.mkdir()
    with workers(config, database, nodes, [SMS_CHANNEL], 1.0, logdir) as running:
        store = Observer(database)
        try:
            time.sleep(0.5)  # the workers are idle, waiting on LISTEN
            providers.reset(jitter=jitter)
            meter = CpuMeter({
                **{f"worker {i + 1}": (lambda pid=pid: [pid]) for i, pid in enumerate(running.pids)},
                "fake providers": lambda: [providers.pid],
                "postgres": cluster.pids,
                "bench": lambda: [],
            })
            c = commit_alert(store, config, database)
            meter.start()
            end = wait_all_done(providers, store, running, "sms", SMS_CHANNEL, n)
            meter.stop()
            fake = providers.stats()["sms"]
            fake.pop("keys", None)
            counts = state_counts(store, c.alert_id)
            nodes_seen = by_node(store)
        finally:
            store.close()
    return {"nodes": nodes, "n": n, "committed": c, "end": end, "rate": n / (end - c.commit), "cpu": meter,
            "fake": fake, "states": counts, "by_node": nodes_seen}


def scenario_nodes(providers: ProviderProcess, cluster: Cluster, work: Path, n: int, rate: float,
                   jitter: tuple[float, float], target: float) -> dict[str, Any] | None:
    heading("6", f"One node vs two nodes on PostgreSQL, {n:,} SMS",
            f"`broadcaster worker --channels {SMS_CHANNEL}` processes (1, then 2, each on a fresh database);\n"
            f"rate_per_second = {rate:,.0f} (not the limit), fake latency uniform {jitter[0] * 1000:.0f}-"
            f"{jitter[1] * 1000:.0f} ms; the alert is committed here as `fire --queue` does, then\n"
            "throughput = n / (commit -> every delivery `sent` in the database, polled every 50 ms)")
    if not cluster.available():
        say(f"    skipped: no PostgreSQL server ({cluster.error})")
        return None
    say(f"    {cluster.describe()}")
    directory = work / "nodes"
    config = sms_config(directory, providers.urls["sms"], n, rate)
    runs = {}
    for nodes in (1, 2):
        r = run_nodes(providers, cluster, config, directory, nodes, n, jitter)
        runs[nodes] = r
        c, fake = r["committed"], r["fake"]
        ok = (r["states"] == {SMS_CHANNEL: {"sent": n}} and fake["count"] == n and fake["distinct_to"] == n
              and fake["duplicates"] == 0 and sum(a for a, _ in r["by_node"].values()) == n
              and sum(d for _, d in r["by_node"].values()) == n and len(r["by_node"]) == nodes)
        r["ok"] = ok
        fake_rate = (fake["count"] - 1) / (fake["last"] - fake["first"])
        say(f"    {nodes} node(s): plan_alert {c.plan_s:.2f} s, outbox commit {c.commit_s:.2f} s; "
            f"commit -> first request {(fake['first'] - c.commit) * 1000:.0f} ms, -> last request "
            f"{fake['last'] - c.commit:.2f} s, -> all sent (seen) {r['end'] - c.commit:.2f} s")
        say(f"      attempts per node: {', '.join(f'{a:,}' for a, _ in r['by_node'].values())}; states "
            f"{r['states'].get(SMS_CHANNEL)}; fake: {fake['count']:,} requests, {fake['distinct_to']:,} distinct "
            f"numbers, {fake['duplicates']} duplicates; rate at the fake {fake_rate:,.0f}/s")
        for line in r["cpu"].lines():
            say(f"      {line}")
        add("6 nodes", f"{nodes} node{'s' if nodes > 1 else ''}: commit -> all sent", f"{r['rate']:,.0f} /s", "info",
            None)
        add("6 nodes", f"  {nodes} node(s): all sent, 1 attempt each, no dup", "yes" if ok else "NO", "exact", ok)
    ratio = runs[2]["rate"] / runs[1]["rate"]
    add("6 nodes", "2 nodes / 1 node throughput", f"{ratio:.2f} x", f">= {target:.1f} x", ratio >= target)
    for nodes, r in runs.items():
        total = sum(r["cpu"].seconds.values())
        add("6 nodes", f"  {nodes} node(s): CPU used / available", f"{total / (r['cpu'].wall * CORES):.0%}",
            f"{CORES} cores", None)
    return runs


# --- 8. fire -> first request, NOTIFY vs polling ----------------------------------------


def four_channel_config(directory: Path, urls: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_recipients(directory / "residents.csv", 10)
    return write_channels(directory, [
        x_channel("x-authority", urls["x"]),
        telegram_channel("telegram-authority", urls["telegram"], "@authority_alerts"),
        sms_channel("sms-residents", urls["sms"], "residents.csv", 200.0),
        webhook_channel("partner-hook", urls["webhook"] + "/alerts"),
    ])


CHANNELS_4 = ["x-authority", "telegram-authority", "sms-residents", "partner-hook"]


def first_requests(providers: ProviderProcess, cluster: Cluster, config: Path, directory: Path, backend: str,
                   fires: int, poll: float, rng: random.Random) -> dict[str, list[float]]:
    """``fires`` queued alerts to the 4 channels; ms from each commit to the first request at each fake."""
    if backend == "postgresql":
        database = cluster.fresh()
    else:
        database = str(directory / f"var-{backend}" / "bench.db")
        Observer(database).close()  # created and migrated before the worker opens it
    logdir = directory / backend
    logdir.mkdir()
    delays: dict[str, list[float]] = {k: [] for k in KINDS}
    with workers(config, database, 1, CHANNELS_4, poll, logdir) as running:
        store = Observer(database)
        try:
            time.sleep(1.0)  # past the first claim: the worker is idle
            for _ in range(fires):
                time.sleep(rng.uniform(0, poll))  # commit at a random phase of the worker's poll cycle
                providers.reset()
                c = commit_alert(store, config, database)
                deadline = time.monotonic() + 2 * poll + STALL_S
                while any(s != "sent" for per in state_counts(store, c.alert_id).values() for s in per):
                    running.check()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"a fire never finished:\n{stderr_tail(running.logs)}")
                    time.sleep(0.02)
                stats = providers.stats()
                for kind in KINDS:
                    first = stats[kind]["first"]
                    delays[kind].append((first - c.commit) * 1000 if first is not None else float("nan"))
        finally:
            store.close()
    return delays


def scenario_notify(providers: ProviderProcess, cluster: Cluster, work: Path, fires: int, poll: float,
                    bound_ms: float) -> None:
    heading("8", "Fire -> first request on every channel, idle workers: NOTIFY (PostgreSQL) vs polling (SQLite)",
            f"one `broadcaster worker --poll {poll:g}` serving X, Telegram, SMS (10 recipients), webhook; provider\n"
            f"latency 0; {fires} alerts committed as `fire --queue` does, each at a random phase of the poll\n"
            "cycle (a uniform 0..poll wait first); ms from the commit returning to the first request at each fake.\n"
            "The first fire is the worker's first send (cold: lazy SDK imports); the others are warm.\n"
            "Without NOTIFY (SQLite has none) only the idle poll wakes the worker: expect 0..poll.")
    directory = work / "notify"
    config = four_channel_config(directory, providers.urls)
    rng = random.Random(8)
    results: dict[str, dict[str, list[float]]] = {}
    if cluster.available():
        results["postgresql"] = first_requests(providers, cluster, config, directory, "postgresql", fires, poll, rng)
    else:
        say(f"    PostgreSQL part skipped: no server ({cluster.error})")
    results["sqlite"] = first_requests(providers, cluster, config, directory, "sqlite", fires, poll, rng)
    say(f"    {'backend':<11} {'channel':<14} {'cold ms':>9} {'warm median':>12} {'warm max':>9}")
    for backend, delays in results.items():
        for kind in KINDS:
            cold, warm = delays[kind][0], delays[kind][1:] or delays[kind]
            say(f"    {backend:<11} {LABEL[kind]:<14} {cold:>9.1f} {statistics.median(warm):>12.1f} {max(warm):>9.1f}")
    if "postgresql" in results:
        delays = results["postgresql"]
        cold = max(delays[k][0] for k in KINDS)
        warm = max(max(delays[k][1:] or delays[k]) for k in KINDS)
        add("8 NOTIFY", "PG+NOTIFY: commit -> first req, cold (worst ch)", f"{cold:.1f} ms", f"<= {bound_ms:.0f} ms",
            cold <= bound_ms)
        add("8 NOTIFY", "PG+NOTIFY: commit -> first req, warm max", f"{warm:.1f} ms", f"<= {bound_ms:.0f} ms",
            warm <= bound_ms)
    delays = results["sqlite"]
    every = [d for k in KINDS for d in delays[k]]
    firsts = [min(delays[k][i] for k in KINDS) for i in range(fires)]
    add("8 NOTIFY", f"SQLite, poll {poll:g} s: first req median (all ch)", f"{statistics.median(every):.0f} ms",
        f"(no NOTIFY: 0..{poll * 1000:.0f} ms)", None)
    add("8 NOTIFY", f"SQLite, poll {poll:g} s: first req max (all ch)", f"{max(every):.0f} ms",
        f"(no NOTIFY: 0..{poll * 1000:.0f} ms)", None)
    say(f"    SQLite, per fire, first request at any channel (ms): {', '.join(f'{d:.0f}' for d in firsts)}")


# --- 9. one shared rate across two nodes ------------------------------------------------


def steady_share(times: list[float], rate: float, trim_s: float = 1.0) -> tuple[float, int, float]:
    """Achieved rate over the arrivals at least ``trim_s`` from either end: (rate, arrivals, span)."""
    first, last = times[0], times[-1]
    inner = [t for t in times if first + trim_s <= t <= last - trim_s]
    if len(inner) < 2:
        inner = times
    span = inner[-1] - inner[0]
    return (len(inner) - 1) / span, len(inner), span


def scenario_shared_rate(providers: ProviderProcess, cluster: Cluster, work: Path, n: int, rate: float,
                         jitter: tuple[float, float], share_bound: float) -> None:
    heading("9", f"Achieved rate across two nodes sharing one SMS channel at rate_per_second = {rate:.0f} "
            f"({n:,} SMS)",
            "two `broadcaster worker` processes on one PostgreSQL database (slots drawn from `rate_slots`);\n"
            f"fake latency uniform {jitter[0] * 1000:.0f}-{jitter[1] * 1000:.0f} ms; steady part = arrivals at the "
            "fake at least 1 s after the first and before the last;\n"
            "share = (m - 1) / span / rate; and the most arrivals in any 1-second window (sliding, half-open),\n"
            "also over the workers' own attempt start times (attempts.started_at, one host clock)")
    if not cluster.available():
        say(f"    skipped: no PostgreSQL server ({cluster.error})")
        return
    directory = work / "shared-rate"
    config = sms_config(directory, providers.urls["sms"], n, rate)
    database = cluster.fresh()
    with workers(config, database, 2, [SMS_CHANNEL], 1.0, directory) as running:
        store = Observer(database)
        try:
            time.sleep(0.5)
            providers.reset(jitter=jitter)
            c = commit_alert(store, config, database)
            wait_all_done(providers, store, running, "sms", SMS_CHANNEL, n)
            times = providers.times("sms")
            fake = providers.stats()["sms"]
            counts = state_counts(store, c.alert_id)
            nodes_seen = by_node(store)
            starts = sorted(float(r[0]) for r in sql(store, "SELECT started_at FROM attempts"))
        finally:
            store.close()
    ordered = sorted(times)
    steady, m, span = steady_share(ordered, rate)
    whole = (len(ordered) - 1) / (ordered[-1] - ordered[0])
    busiest = max_in_window(ordered, 1.0)
    ok_exact = (counts == {SMS_CHANNEL: {"sent": n}} and fake["count"] == n and fake["distinct_to"] == n
                and fake["duplicates"] == 0)
    say(f"    {len(ordered):,} requests in {ordered[-1] - ordered[0]:.3f} s; steady part {m:,} in {span:.3f} s; "
        f"attempts per node {', '.join(f'{a:,}' for a, _ in nodes_seen.values())}; states {counts.get(SMS_CHANNEL)}")
    share = steady / rate * 100
    add("9 shared rate", "steady achieved / configured (2 nodes)", f"{share:.2f} %", ">= 95 % and <= 100 %",
        share_bound * 100 <= share <= 100.0)
    add("9 shared rate", "  whole run, first -> last request", f"{whole / rate * 100:.2f} %", "", None)
    add("9 shared rate", "max requests in any 1 s window", f"{busiest}", f"<= {rate:.0f} (never more)",
        busiest <= rate)
    add("9 shared rate", "  same over attempt starts (engine side)", f"{max_in_window(starts, 1.0)}",
        "(attempts.started_at)", None)
    both = len(nodes_seen) == 2 and min(a for a, _ in nodes_seen.values()) > 0
    add("9 shared rate", "both nodes sent; all sent once, no duplicate", "yes" if ok_exact and both else "NO",
        "exact", ok_exact and both)


# --- 10. one alert to 180 channels, over one or two worker processes ----------------------


def fanout_config(directory: Path, urls: dict[str, str], per_kind: int) -> tuple[Path, list[str]]:
    """Scenario 2's channels: ``per_kind`` each of X, Telegram, webhook and one-recipient SMS."""
    directory.mkdir(parents=True, exist_ok=True)
    channels: list[dict[str, Any]] = []
    for i in range(per_kind):
        write_recipients(directory / f"sms-{i:03d}.csv", 1, start=1000 + i)
        channels += [
            x_channel(f"x-{i:03d}", f"{urls['x']}/x{i:03d}"),
            telegram_channel(f"tg-{i:03d}", urls["telegram"], f"@bench_{i:03d}"),
            webhook_channel(f"hook-{i:03d}", f"{urls['webhook']}/alerts/{i:03d}"),
            sms_channel(f"sms-{i:03d}", urls["sms"], f"sms-{i:03d}.csv", 50.0, sender=f"+1500555{i:04d}"),
        ]
    return write_channels(directory, channels), [c["id"] for c in channels]


def scenario_fanout_nodes(providers: ProviderProcess, cluster: Cluster, work: Path, per_kind: int,
                          latency: float) -> None:
    total = 4 * per_kind
    heading("10", f"One alert to {total} channels over worker processes on PostgreSQL, providers answering in "
                  f"{latency * 1000:.0f} ms",
            "scenario 2's channels served by 1, then 2 idle `broadcaster worker` processes (each its own half);\n"
            "the alert is committed here as `fire --queue` does; wall time from the COMMIT until every delivery\n"
            "is recorded (the database polled every 5 ms)")
    if not cluster.available():
        say(f"    skipped: no PostgreSQL server ({cluster.error})")
        return
    directory = work / "fanout-nodes"
    config, ids = fanout_config(directory, providers.urls, per_kind)
    bound = 1.5 * latency * 1000
    for nodes in (1, 2):
        database = cluster.fresh()
        logdir = directory / f"{nodes}-node"
        logdir.mkdir()
        groups = [ids[i::nodes] for i in range(nodes)]
        with workers(config, database, nodes, ids, 5.0, logdir, groups=groups) as running:
            store = Observer(database)
            try:
                time.sleep(1.0)  # idle, waiting on LISTEN
                providers.reset(latency=latency)
                c = commit_alert(store, config, database)
                deadline = time.monotonic() + STALL_S
                while True:
                    (row,) = sql(store, "SELECT COUNT(*) FROM deliveries"
                                        " WHERE state IN ('pending', 'sending', 'unknown')")
                    if int(row[0]) == 0:
                        break
                    running.check()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the fan-out never finished:\n{stderr_tail(running.logs)}")
                    time.sleep(0.005)
                done = time.monotonic()
                stats = providers.stats()
                counts: Counter[str] = Counter()
                for per_channel in state_counts(store, c.alert_id).values():
                    counts.update(per_channel)
            finally:
                store.close()
            providers.reset()
        firsts = [first for kind in KINDS for first, _count in stats[kind]["keys"].values()]
        wall = (done - c.commit) * 1000
        ok = set(counts) == {"sent"} and counts["sent"] == c.created
        say(f"    {nodes} worker(s): {c.created} deliveries, states {dict(counts)}; first request "
            f"{(min(firsts) - c.commit) * 1000:.0f} ms, every channel's first request "
            f"{(max(firsts) - c.commit) * 1000:.0f} ms after the commit; all recorded {wall:.0f} ms")
        add("10 fan-out", f"{total} channels, {nodes} worker(s): commit -> all recorded", f"{wall:.0f} ms",
            f"< {bound:.0f} ms (1.5 x lat)", wall < bound and ok)

"""The CLI as whole processes: scenarios 11, 12 and 17 of ``python -m bench``.

Everything here is timed from just before ``subprocess.Popen`` (``time.monotonic()``,
CLOCK_MONOTONIC) in this process, so interpreter start-up, imports, reading
``channels.toml`` and the templates, opening the database and exiting are all in
the figure, as an officer at a terminal waits for them.

* **11**: ``broadcaster --help`` (the virtualenv's console script, and ``python -m
  broadcaster`` beside it), and ``broadcaster fire road_closure --use-examples
  --dry-run --json`` on the repository's own sample ``channels.toml`` with a private
  ``--db`` in a temporary folder.
* **12**: ``broadcaster fire road_closure --use-examples --live --yes --json`` to many
  channels at the fakes (in their own process, ``bench.provider_proc``), every
  provider answering after a fixed latency. The headline is start -> the last
  request *accepted* at the fakes (their answer stamp: arrival + latency). The
  process's own phases come for free from what it stores and what the fakes see:
  ``alerts.sent_at`` is the ``time.time()`` the CLI hands to ``plan_request`` (after
  imports, config, catalogue and the store are open), ``attempts.started_at`` /
  ``finished_at`` bracket the sends; wall-clock stamps are mapped onto
  CLOCK_MONOTONIC with the offset between the two clocks read just before Popen.
* **17**: the same live fire to 20 channels of each kind of issue 13 (WhatsApp, email,
  Facebook, Instagram: 80 channels), the fakes answering after the same latency.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.harness import (
    PUBLIC_URL,
    REPO,
    TEMPLATE,
    ProviderProcess,
    mixed_channels,
    new_kind_channels,
    write_channels,
)
from bench.report import add, heading, say
from broadcaster.app.users import Users
from broadcaster.store import Store
from tests.support import read

HELP_BOUND_S = 0.25
DRY_RUN_BOUND_S = 0.6
LIVE_BOUND_S = 0.8
KINDS = ("x", "telegram", "sms", "webhook")


def cli() -> tuple[list[str], str]:
    """The virtualenv's ``broadcaster`` console script, or ``python -m broadcaster`` where there is none."""
    script = Path(sys.executable).parent / "broadcaster"
    if script.exists():
        return [str(script)], f"{script.relative_to(REPO) if script.is_relative_to(REPO) else script}"
    return [sys.executable, "-m", "broadcaster"], "python -m broadcaster"


@dataclass
class Timed:
    start: float  # time.monotonic() just before Popen
    end: float  # time.monotonic() once the process has exited
    wall_offset: float  # time.time() - time.monotonic(), read just before Popen
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def mono(self, wall: float) -> float:
        """A ``time.time()`` stamp (from the database) on this process's CLOCK_MONOTONIC axis."""
        return wall - self.wall_offset


def timed(cmd: list[str], env: dict[str, str] | None = None) -> Timed:
    offset = time.time() - time.monotonic()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate()
    end = time.monotonic()
    return Timed(start, end, offset, proc.returncode, out, err)


def checked(run: Timed, what: str) -> Timed:
    if run.returncode != 0:
        raise RuntimeError(f"{what} exited with {run.returncode}:\n{run.stderr.decode(errors='replace')[-3000:]}")
    return run


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# --- 11. --help and a dry-run fire, as whole processes ---------------------------------


def scenario_cli_startup(work: Path, runs: int) -> None:
    base, name = cli()
    heading("11", "The CLI as a whole process: --help, and a dry-run fire on the sample channels.toml",
            f"{runs} runs each (after one untimed run that warms the page cache); wall time from just before\n"
            "Popen until the process has exited. The console script is the virtualenv's own\n"
            f"({name}); `python -m broadcaster` and a bare `python -c pass` are shown beside it. The dry-run\n"
            "is `fire road_closure --use-examples --dry-run --json` with --config the repository's channels.toml\n"
            "and a private --db in a temporary folder (created by the first, untimed run)")
    python = [sys.executable]
    results: dict[str, list[float]] = {}
    for label, cmd in ((f"{name} --help", [*base, "--help"]),
                       ("python -m broadcaster --help", [*python, "-m", "broadcaster", "--help"]),
                       ("python -c pass (interpreter alone)", [*python, "-c", "pass"])):
        checked(timed(cmd), label)  # untimed: page cache
        results[label] = [checked(timed(cmd), label).seconds for _ in range(runs)]
    directory = work / "cli-dry-run"
    directory.mkdir()
    db = directory / "sample.db"
    dry = [*base, "--config", str(REPO / "channels.toml"), "--db", str(db), "fire", TEMPLATE, "--use-examples",
           "--dry-run", "--json"]
    first = checked(timed(dry), "the dry-run fire")
    dry_runs = [checked(timed(dry), "the dry-run fire") for _ in range(runs)]
    answer = orjson.loads(dry_runs[-1].stdout)
    states = {d["state"] for d in answer["deliveries"]}
    say(f"    dry-run answer: mode {answer['mode']}, {len(answer['deliveries'])} deliveries, states {sorted(states)}; "
        f"first run (creates the database) {ms(first.seconds)}")
    for label, times in results.items():
        say(f"    {label}: " + ", ".join(f"{t * 1000:.0f}" for t in times) + " ms")
    say("    dry-run fire: " + ", ".join(f"{r.seconds * 1000:.0f}" for r in dry_runs) + " ms")
    for label, times in results.items():
        bounded = "pass" not in label
        for stat, value in (("median", statistics.median(times)), ("max", max(times))):
            add("11 CLI process", f"{label}: {stat}", ms(value), f"<= {ms(HELP_BOUND_S)}" if bounded else "",
                value <= HELP_BOUND_S if bounded else None)
    dry_s = [r.seconds for r in dry_runs]
    ok = answer["mode"] == "dry-run" and states == {"sent"}
    for stat, value in (("median", statistics.median(dry_s)), ("max", max(dry_s))):
        add("11 CLI process", f"dry-run fire (sample config): {stat}", ms(value), f"<= {ms(DRY_RUN_BOUND_S)}",
            value <= DRY_RUN_BOUND_S and ok)


# --- 12. a live fire as a whole process ------------------------------------------------


def prepare_database(db: Path) -> str:
    """Create and migrate the SQLite file (as the first command on a machine would) and an officer's token.

    The token goes into ``BROADCASTER_TOKEN`` for the CLI: a live fire acts as a verified user (one scrypt check).
    """

    async def go(store: Store) -> str:
        return (await Users(store.db).add("bench-officer", "officer")).reveal()

    return read(str(db), go)


def alert_phases(db: Path, alert_id: str) -> dict[str, float]:
    """Wall-clock stamps the fire stored: plan time, and the first/last attempt's start and finish."""

    async def go(store: Store) -> dict[str, float]:
        alert = await store.alerts.get(alert_id)
        row = (await store.db.execute(
            "SELECT MIN(a.started_at) AS first_start, MAX(a.started_at) AS last_start,"
            " MAX(a.finished_at) AS last_finish FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.alert_id = ?", (alert_id,))).one()
        assert row is not None
        return {"planned": float(alert.sent_at), "first_start": float(row["first_start"]),
                "last_start": float(row["last_start"]), "last_finish": float(row["last_finish"])}

    return read(str(db), go)


def live_runs(providers: ProviderProcess, cmd: list[str], env: dict[str, str], db: Path, kinds: tuple[str, ...],
              expected: dict[str, int] | None, runs: int, latency: float) -> list[dict[str, float]]:
    """``runs`` timed live fires of ``cmd``; per run, its phases in seconds after Popen.

    Every delivery must end ``sent``, and the fakes of ``kinds`` must have accepted exactly ``expected[kind]``
    requests each (None: as many in all as there are deliveries). Also ``last_accepted:KIND`` per kind.
    """
    rows: list[dict[str, float]] = []
    for _ in range(runs):
        providers.reset(latency=latency)
        run = checked(timed(cmd, env), "the live fire")
        stats = providers.stats()
        answer = orjson.loads(run.stdout)
        states = [d["state"] for d in answer["deliveries"]]
        accepted = {k: stats[k]["answered"] for k in kinds}
        all_accepted = accepted == expected if expected is not None else sum(accepted.values()) == len(states)
        if states.count("sent") != len(states) or not all_accepted:
            raise RuntimeError(f"the live fire did not deliver everything: states {sorted(set(states))}, "
                               f"accepted at the fakes {accepted} for {len(states)} deliveries"
                               + (f" (expected {expected})" if expected is not None else ""))
        phases = alert_phases(db, answer["alert_id"])
        firsts = [stats[k]["first"] for k in kinds if stats[k]["first"] is not None]
        lasts = [stats[k]["last_answer"] for k in kinds if stats[k]["last_answer"] is not None]
        rows.append({
            "deliveries": len(states),
            "requests": sum(accepted.values()),
            "planned": run.mono(phases["planned"]) - run.start,
            "first_start": run.mono(phases["first_start"]) - run.start,
            "first_request": min(firsts) - run.start,
            "last_request": max(stats[k]["last"] for k in kinds if stats[k]["last"] is not None) - run.start,
            "last_accepted": max(lasts) - run.start,
            "last_finish": run.mono(phases["last_finish"]) - run.start,
            "exit": run.seconds,
            **{f"last_accepted:{k}": stats[k]["last_answer"] - run.start for k in kinds
               if stats[k]["last_answer"] is not None},
        })
    providers.reset()
    return rows


def show_runs(rows: list[dict[str, float]], per_kind: tuple[str, ...] = ()) -> None:
    """The per-run phase table (ms after Popen); ``per_kind`` adds each kind's last acceptance."""
    say(f"    {'run':>4} {'planned':>8} {'1st attempt':>12} {'1st request':>12} {'last request':>13} "
        f"{'last accepted':>14} {'last finished':>14} {'exit':>7}"
        + "".join(f" {k[:9]:>9}" for k in per_kind))
    for i, r in enumerate(rows, 1):
        say(f"    {i:>4} {r['planned'] * 1000:>8.0f} {r['first_start'] * 1000:>12.0f} "
            f"{r['first_request'] * 1000:>12.0f} {r['last_request'] * 1000:>13.0f} "
            f"{r['last_accepted'] * 1000:>14.0f} {r['last_finish'] * 1000:>14.0f} {r['exit'] * 1000:>7.0f}"
            + "".join(f" {r[f'last_accepted:{k}'] * 1000:>9.0f}" for k in per_kind))


def add_live_rows(label: str, total: int, rows: list[dict[str, float]]) -> None:
    headline = [r["last_accepted"] for r in rows]
    add(label, f"{total} ch: start -> all accepted, median", ms(statistics.median(headline)),
        f"<= {ms(LIVE_BOUND_S)}", statistics.median(headline) <= LIVE_BOUND_S)
    add(label, f"{total} ch: start -> all accepted, max", ms(max(headline)), f"<= {ms(LIVE_BOUND_S)}",
        max(headline) <= LIVE_BOUND_S)
    for key, what in (("planned", "start -> plan starts (imports, config, store)"),
                      ("first_start", "start -> first attempt starts (after commit)"),
                      ("first_request", "start -> first request at the fakes"),
                      ("last_request", "start -> last request arrives"),
                      ("last_finish", "start -> last attempt finished (stored stamp)"),
                      ("exit", "start -> process exited")):
        add(label, f"  {what}, median", ms(statistics.median(r[key] for r in rows)), "", None)


def live_command(config: Path, db: Path) -> tuple[list[str], dict[str, str]]:
    """``broadcaster fire road_closure --use-examples --live --yes --json`` on ``config`` and ``db``, as an officer.

    Creates and migrates ``db`` and the officer; the token goes in ``BROADCASTER_TOKEN`` (the environment also
    holds the fake secrets, see ``set_secrets``).
    """
    base, _name = cli()
    token = prepare_database(db)
    env = {**os.environ, "BROADCASTER_TOKEN": token}
    cmd = [*base, "--config", str(config), "--db", str(db), "fire", TEMPLATE, "--use-examples", "--live", "--yes",
           "--json"]
    return cmd, env


def scenario_cli_live(providers: ProviderProcess, work: Path, counts: dict[str, int], runs: int,
                      latency: float) -> None:
    _base, name = cli()
    total = sum(counts.values())
    heading("12", f"A live CLI fire as a whole process to {total} channels, every provider answering in "
                  f"{latency * 1000:.0f} ms",
            f"{counts['webhook']} webhooks, {counts['telegram']} Telegram channels, {counts['sms']} one-recipient SMS "
            f"lists; `{name} --config ... --db ... fire {TEMPLATE}\n"
            "--use-examples --live --yes --json` with the fake secrets in its environment; "
            f"{runs} runs on one SQLite file\n"
            "(created and migrated beforehand). Headline: just before Popen -> the last request accepted at the\n"
            "fakes (their answer stamp, arrival + latency). Phases from the stored alert and attempts (wall clock,\n"
            "mapped onto CLOCK_MONOTONIC) and from the fakes' arrival stamps")
    directory = work / "cli-live"
    config = write_channels(directory, mixed_channels(directory, providers.urls, **counts))
    db = directory / "var" / "cli.db"
    cmd, env = live_command(config, db)
    rows = live_runs(providers, cmd, env, db, KINDS, None, runs, latency)
    say(f"    {rows[0]['deliveries']:.0f} deliveries per fire, every one `sent` and accepted at the fakes; "
        "per run, ms after Popen:")
    show_runs(rows)
    add_live_rows("12 CLI live", total, rows)


# --- 17. a live fire to the kinds of issue 13 -------------------------------------------

NEW_KINDS = ("whatsapp", "email", "facebook", "instagram")


def scenario_cli_live_new_kinds(providers: ProviderProcess, work: Path, per_kind: int, runs: int,
                                latency: float) -> None:
    """Scenario 12's live CLI fire, to ``per_kind`` channels of each of WhatsApp, email, Facebook and Instagram.

    Twice: with the kinds' defaults, then with ``connections = per_kind`` on every email channel. All the email
    channels name one server and login, so they share one pool of connections, as many as the largest
    ``connections`` among them (default 4): with the defaults, 20 one-address lists go out four at a time.
    """
    _base, name = cli()
    total = per_kind * len(NEW_KINDS)
    heading("17", f"A live CLI fire as a whole process to {total} channels of the new kinds, every provider "
                  f"answering in {latency * 1000:.0f} ms",
            f"{per_kind} each of WhatsApp (Twilio, ContentSid, one-recipient list, own sender), email (one-address\n"
            "list, own from; all on one aiosmtpd server and login, plain SMTP on loopback), Facebook Pages (one\n"
            "combined post) and Instagram accounts (a post per language, each a media container then\n"
            f"media_publish); `{name} ... fire {TEMPLATE} --use-examples --live --yes --json` as an officer,\n"
            f"{runs} runs on one SQLite file; once with every kind's defaults, once with connections = {per_kind} on\n"
            "every email channel (they share one pool: as many connections as the largest `connections`, default 4).\n"
            "Headline as scenario 12: just before Popen -> the last request accepted at the fakes (Instagram: the\n"
            "last media_publish)")
    for connections in (None, per_kind):
        email_options = {} if connections is None else {"connections": connections}
        directory = work / ("cli-live-new" if connections is None else f"cli-live-new-c{connections}")
        channels = new_kind_channels(directory, providers.urls, whatsapp=per_kind, email=per_kind,
                                     facebook=per_kind, instagram=per_kind, email_options=email_options)
        config = write_channels(directory, channels, public_url=PUBLIC_URL)
        db = directory / "var" / "cli.db"
        cmd, env = live_command(config, db)
        # One message per one-recipient list, one combined Facebook post, two Instagram posts of two requests each.
        expected = {"whatsapp": per_kind, "email": per_kind, "facebook": per_kind, "instagram": 4 * per_kind}
        rows = live_runs(providers, cmd, env, db, NEW_KINDS, expected, runs, latency)
        variant = "the kinds' defaults" if connections is None else f"connections = {connections} on each email channel"
        say(f"    {variant}: {rows[0]['deliveries']:.0f} deliveries ({rows[0]['requests']:.0f} requests) per fire, "
            "every one `sent` and accepted at the fakes; per run, ms after Popen, with each kind's last acceptance:")
        show_runs(rows, NEW_KINDS)
        label = "17 CLI live new" if connections is None else f"17 email c={connections}"
        add_live_rows(label, total, rows)
        for kind in NEW_KINDS:
            add(label, f"  start -> last {kind} accepted, median",
                ms(statistics.median(r[f"last_accepted:{kind}"] for r in rows)), "", None)

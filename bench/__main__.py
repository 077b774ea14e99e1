"""Delivery-engine benchmark: ``python -m bench [--quick] [--only 1,2,...]`` from the repository root.

Eighteen scenarios, each printing its figures as soon as it finishes, then a
summary table; 6-10 run several nodes on a throwaway PostgreSQL server
(``bench.nodes``); 11, 12 and 17 run the CLI as whole processes (``bench.process``);
14-15 run ``serve`` in this process (``bench.service``; 15 on PostgreSQL). Every
live fire uses the real SDKs against loopback fakes running in a separate process
(``bench.provider_proc``). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.cards import scenario_cards
from bench.failover import scenario_failover
from bench.harness import (
    REPO,
    Fired,
    ProviderProcess,
    fire,
    mixed_channels,
    set_secrets,
    sms_channel,
    telegram_channel,
    webhook_channel,
    write_channels,
    write_recipients,
    x_channel,
)
from bench.nodes import Cluster, scenario_fanout_nodes, scenario_nodes, scenario_notify, scenario_shared_rate
from bench.process import scenario_cli_live, scenario_cli_live_new_kinds, scenario_cli_startup
from bench.report import ROWS, Row, add, heading, say, summary
from bench.service import scenario_serve_fanout, scenario_serve_lag
from bench.signing import ensure_sample_signing_key, scenario_signing

KINDS = ("x", "telegram", "sms", "webhook")
LABEL = {"x": "X", "telegram": "Telegram", "sms": "SMS (Twilio)", "webhook": "webhook"}


@dataclass(frozen=True)
class Sizes:
    first_runs: int  # fires in scenario 1 (the first is cold)
    per_kind: int  # channels of each kind in scenario 2 (x4 = total)
    sms_total: int  # scenario 3
    rate_count: int  # scenario 4
    rate: float  # scenario 4 configured rate_per_second
    rss_small: int  # scenario 5
    rss_large: int
    nodes_sms: int  # scenario 6 (and 7: the same count on each backend)
    notify_fires: int  # scenario 8, per backend (the first is cold)
    notify_poll: float  # scenario 8: the idle workers' --poll
    shared_count: int  # scenario 9
    shared_rate: float  # scenario 9 rate_per_second, shared by two nodes
    cli_runs: int  # scenario 11: timed runs of each command
    mixed: tuple[int, int, int]  # scenarios 12 and 13: webhooks, Telegram channels, one-recipient SMS lists
    cli_live_runs: int  # scenario 12
    mixed_fires: int  # scenario 13
    serve_fires: int  # scenario 14 (the first is the server's first fire)
    lag_sms: int  # scenario 15: the live SMS fan-out
    lag_preview: int  # scenario 15: rows of the previewed recipient list
    new_kinds: int  # scenario 17: channels of each of WhatsApp, email, Facebook and Instagram


FULL = Sizes(first_runs=6, per_kind=45, sms_total=100_000, rate_count=2_000, rate=200.0,
             rss_small=10_000, rss_large=100_000, nodes_sms=100_000, notify_fires=6, notify_poll=5.0,
             shared_count=2_000, shared_rate=200.0, cli_runs=10, mixed=(90, 45, 45), cli_live_runs=5,
             mixed_fires=3, serve_fires=4, lag_sms=100_000, lag_preview=200_000, new_kinds=20)
QUICK = Sizes(first_runs=2, per_kind=5, sms_total=2_000, rate_count=300, rate=100.0, rss_small=500, rss_large=2_000,
              nodes_sms=3_000, notify_fires=2, notify_poll=1.0, shared_count=300, shared_rate=100.0, cli_runs=3,
              mixed=(10, 5, 5), cli_live_runs=2, mixed_fires=1, serve_fires=2, lag_sms=3_000, lag_preview=6_000,
              new_kinds=3)

LATENCY_FANOUT = 0.200
SMS_JITTER = (0.0, 0.005)
SMS_RATE = 5000.0
FIRST_BOUND_MS = 50.0
RSS_GROWTH_BOUND = 0.10
NODES_RATE = 20_000.0  # scenario 6: far above what the machine can send, so the limiter is never the limit
NODES_RATIO_TARGET = 1.8
SHARED_SHARE_BOUND = 0.95
THROUGHPUT_TARGET = 1000.0


# --- 1. fire -> first request per channel -----------------------------------------------


def scenario_first_request(providers: ProviderProcess, work: Path, sizes: Sizes) -> None:
    heading("1", "Fire -> first request at each provider",
            f"one channel of each kind, provider latency 0; {sizes.first_runs} fires, the first is cold\n"
            "(first send in this process); ms from the outbox COMMIT (on_commit hook) to the first request\n"
            "arriving at that provider's fake (handler entry, CLOCK_MONOTONIC in both processes)")
    directory = work / "first"
    directory.mkdir()
    write_recipients(directory / "residents.csv", 10)
    urls = providers.urls
    config = write_channels(directory, [
        x_channel("x-authority", urls["x"]),
        telegram_channel("telegram-authority", urls["telegram"], "@authority_alerts"),
        sms_channel("sms-residents", urls["sms"], "residents.csv", 200.0),
        webhook_channel("partner-hook", urls["webhook"] + "/alerts"),
    ])
    delays: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(sizes.first_runs):
        providers.reset()
        fired = fire(config, directory / "var" / "bench.db")
        stats = providers.stats()
        for kind in KINDS:
            first = stats[kind]["first"]
            delays[kind].append((first - fired.commit) * 1000 if first is not None else float("nan"))
    say(f"    {'channel':<14} {'cold ms':>9} {'warm median':>12} {'warm max':>9}")
    for kind in KINDS:
        cold, warm = delays[kind][0], delays[kind][1:] or delays[kind]
        say(f"    {LABEL[kind]:<14} {cold:>9.1f} {statistics.median(warm):>12.1f} {max(warm):>9.1f}")
    for kind in KINDS:
        cold, warm = delays[kind][0], delays[kind][1:] or delays[kind]
        add("1 first request", f"{LABEL[kind]}: commit -> first request (cold)", f"{cold:.1f} ms",
            f"<= {FIRST_BOUND_MS:.0f} ms", cold <= FIRST_BOUND_MS)
        add("1 first request", f"{LABEL[kind]}: commit -> first request (warm max)", f"{max(warm):.1f} ms",
            f"<= {FIRST_BOUND_MS:.0f} ms", max(warm) <= FIRST_BOUND_MS)


# --- 2 and 13. 180 channels at 200 ms, in this process -----------------------------------


def scenario_fanout(providers: ProviderProcess, work: Path, sizes: Sizes) -> None:
    n = sizes.per_kind
    heading("2", f"One alert to {4 * n} channels at once, every provider answering in {LATENCY_FANOUT * 1000:.0f} ms",
            f"{n} each of X (ar + en posts), Telegram (combined), webhook, SMS (1 recipient each);\n"
            "50/s per channel; wall time from the outbox COMMIT until deliver() returns with every outcome\n"
            "committed to SQLite")
    directory = work / "fanout"
    config = write_channels(directory, mixed_channels(directory, providers.urls, x=n, telegram=n, webhook=n, sms=n))
    fanout_fires(providers, config, "2 fan-out", 4 * n, 1)


def scenario_fanout_mixed(providers: ProviderProcess, work: Path, sizes: Sizes) -> None:
    webhooks, telegrams, sms = sizes.mixed
    total = webhooks + telegrams + sms
    heading("13", f"One alert to {total} mixed channels at once (in-process), every provider answering in "
                  f"{LATENCY_FANOUT * 1000:.0f} ms",
            f"{webhooks} webhooks, {telegrams} Telegram (combined), {sms} SMS (1 recipient each), no X: the "
            "channels of\nscenario 12's CLI fire, fired here in-process as scenario 2 does "
            f"({sizes.mixed_fires} fire(s), each on a fresh SQLite file);\n50/s per channel; wall time from the "
            "outbox COMMIT until deliver() returns with every outcome committed")
    directory = work / "fanout-mixed"
    config = write_channels(directory, mixed_channels(directory, providers.urls, webhook=webhooks,
                                                      telegram=telegrams, sms=sms))
    fanout_fires(providers, config, "13 mixed", total, sizes.mixed_fires)


def fanout_fires(providers: ProviderProcess, config: Path, scenario: str, channels: int, fires: int) -> None:
    """``fires`` fires of ``config`` at LATENCY_FANOUT (each on a fresh database); the bound applies to each."""
    bound = 1.5 * LATENCY_FANOUT * 1000
    walls: list[float] = []
    runs: list[tuple[Fired, dict[str, Any]]] = []
    for i in range(fires):
        providers.reset(latency=LATENCY_FANOUT)
        fired = fire(config, config.parent / "var" / f"bench-{i + 1}.db")
        stats = providers.stats()
        providers.reset()
        runs.append((fired, stats))
        firsts = {kind: sorted(first for first, _count in stats[kind]["keys"].values()) for kind in KINDS}
        every_first = [t for kind in KINDS for t in firsts[kind]]
        requests = sum(stats[kind]["count"] for kind in KINDS)
        walls.append(fired.send_s * 1000)
        prefix = f"    fire {i + 1}: " if fires > 1 else "    "
        say(f"{prefix}deliveries committed {fired.created}, outcomes {fired.named_states}, requests at the fakes "
            f"{requests}, channels seen {len(every_first)}/{channels}")
        say(f"{prefix}before the commit: plan_alert {fired.plan_s * 1000:.0f} ms, open {channels} channel clients "
            f"{fired.open_s * 1000:.0f} ms; outbox commit {fired.commit_s * 1000:.1f} ms; commit -> all durable "
            f"{fired.send_s * 1000:.0f} ms")
        say(f"{prefix}first request per channel, ms after commit: " + ", ".join(
            f"{LABEL[k]} {(firsts[k][0] - fired.commit) * 1000:.0f}-{(firsts[k][-1] - fired.commit) * 1000:.0f}"
            for k in KINDS if firsts[k]))
    all_sent = all(fired.states.get("sent") == fired.created for fired, _ in runs)
    if fires == 1:
        add(scenario, f"{channels} channels: commit -> all durable", f"{walls[0]:.0f} ms",
            f"< {bound:.0f} ms (1.5 x lat)", walls[0] < bound and all_sent)
    else:
        add(scenario, f"{channels} channels: commit -> all durable, first fire", f"{walls[0]:.0f} ms",
            f"< {bound:.0f} ms (1.5 x lat)", walls[0] < bound and all_sent)
        add(scenario, f"{channels} channels: commit -> all durable, max", f"{max(walls):.0f} ms",
            f"< {bound:.0f} ms (1.5 x lat)", max(walls) < bound and all_sent)
        add(scenario, "  commit -> all durable, median", f"{statistics.median(walls):.0f} ms", "", None)

    def median_ms(get: Any) -> str:
        return f"{statistics.median(get(f, st) for f, st in runs) * 1000:.0f} ms"

    def first_at(st: dict[str, Any]) -> list[float]:
        return [first for kind in KINDS for first, _count in st[kind]["keys"].values()]

    what = "" if fires == 1 else " (median)"
    add(scenario, f"  commit -> last outcome known (progress){what}",
        median_ms(lambda f, st: (f.last_outcome or f.end) - f.commit), "", None)
    add(scenario, f"  commit -> first request at any channel{what}",
        median_ms(lambda f, st: min(first_at(st)) - f.commit), "", None)
    add(scenario, f"  commit -> every channel's first request{what}",
        median_ms(lambda f, st: max(first_at(st)) - f.commit), "", None)
    add(scenario, f"  commit -> last request arrives{what}",
        median_ms(lambda f, st: max(st[k]["last"] for k in KINDS if st[k]["last"] is not None) - f.commit), "", None)
    add(scenario, f"  commit -> last request accepted at the fakes{what}",
        median_ms(lambda f, st: max(st[k]["last_answer"] for k in KINDS if st[k]["last_answer"] is not None)
                  - f.commit), "", None)
    add(scenario, f"  open {channels} channel clients (before commit){what}", median_ms(lambda f, st: f.open_s),
        "", None)


# --- 3 and 5: the SMS subprocess --------------------------------------------------------


def run_sms(providers: ProviderProcess, count: int, rate: float, mode: str = "live",
            database: str | None = None) -> dict[str, Any]:
    """``python -m bench.sms`` in a fresh process; returns its result plus the fake's view."""
    providers.reset(jitter=SMS_JITTER)
    cmd = [sys.executable, "-m", "bench.sms", "--count", str(count), "--rate", str(rate),
           "--sms-url", providers.urls["sms"], "--mode", mode, *(["--db", database] if database else [])]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[1:])} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = orjson.loads(lines[-1].removeprefix("BENCH-RESULT "))
    result["fake"] = providers.stats(window=1.0)["sms"]
    result["fake"].pop("keys", None)
    providers.reset()
    return result


def scenario_throughput(providers: ProviderProcess, sizes: Sizes) -> dict[str, Any]:
    n = sizes.sms_total
    heading("3", f"{n:,} SMS, every attempt logged durably (SQLite WAL, synchronous=NORMAL)",
            f"one SMS channel, rate_per_second = {SMS_RATE:.0f} (not the limit), fake latency uniform "
            f"{SMS_JITTER[0] * 1000:.0f}-{SMS_JITTER[1] * 1000:.0f} ms;\n"
            "fresh process (python -m bench.sms), default dispatcher tuning")
    r = run_sms(providers, n, SMS_RATE)
    v, fake = r["verify"], r["fake"]
    sent_attempts = v["attempt_outcomes"].get("sent", {})
    rate = n / r["send_s"]
    fake_rate = (fake["count"] - 1) / (fake["last"] - fake["first"]) if fake["count"] > 1 else 0.0
    all_ok = (v["states"] == {"sent": n} and v["deliveries_not_one_attempt"] == 0
              and set(v["attempt_outcomes"]) == {"sent"} and sent_attempts.get("rows") == n
              and sent_attempts.get("deliveries") == n and sent_attempts.get("no_provider_id") == 0
              and fake["count"] == n and fake["accepted"] == n and fake["distinct_to"] == n
              and fake["duplicates"] == 0 and v["journal_mode"] == "wal")
    say(f"    store: states {v['states']}, deliveries with attempts != 1: {v['deliveries_not_one_attempt']}, "
        f"attempt rows {v['attempt_outcomes']}, journal {v['journal_mode']}")
    say(f"    fake Twilio: {fake['count']:,} requests, {fake['accepted']:,} accepted, "
        f"{fake['distinct_to']:,} distinct numbers, {fake['duplicates']} duplicates")
    add("3 throughput", "plan_alert (validate, render, count audience)", f"{r['plan_s']:.2f} s", "", None)
    add("3 throughput", f"outbox commit of {n:,} deliveries", f"{r['commit_s']:.2f} s", "", None)
    add("3 throughput", "send phase: commit -> all durable", f"{rate:,.0f} /s", ">= 1,000 /s",
        rate >= THROUGHPUT_TARGET)
    add("3 throughput", "  (at the fake: first -> last request)", f"{fake_rate:,.0f} /s", "", None)
    overall = n / (r["plan_s"] + r["commit_s"] + r["send_s"])
    add("3 throughput", "  end to end incl. plan + commit", f"{overall:,.0f} /s", "", None)
    add("3 throughput", "all sent, 1 attempt each, fake got each once", "yes" if all_ok else "NO", "exact", all_ok)
    add("3 throughput", f"  then the seal of its {r['sealed_deliveries']:,} final states (audit anchor, once)",
        f"{r['seal_s']:.2f} s", "", None)
    return r


# --- 4. achieved share of a configured rate ---------------------------------------------


def scenario_rate(providers: ProviderProcess, sizes: Sizes) -> None:
    n, rate = sizes.rate_count, sizes.rate
    heading("4", f"Achieved rate as a share of rate_per_second = {rate:.0f} ({n:,} SMS)",
            f"fresh process (python -m bench.sms), fake latency uniform {SMS_JITTER[0] * 1000:.0f}-"
            f"{SMS_JITTER[1] * 1000:.0f} ms; achieved = (n - 1) / (t_last - t_first)\n"
            "over request arrivals at the fake; also the most requests the provider saw in any 1-second window")
    r = run_sms(providers, n, rate)
    fake = r["fake"]
    achieved = (fake["count"] - 1) / (fake["last"] - fake["first"])
    share = achieved / rate * 100
    say(f"    {fake['count']:,} requests in {fake['last'] - fake['first']:.3f} s; store states {r['verify']['states']}")
    gaps = fake.get("gaps_ms", {})
    say(f"    gaps between arrivals (ideal {1000 / rate:.2f} ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in gaps.items())
        + (f" (the longest after request #{fake['max_gap_after']})" if "max_gap_after" in fake else ""))
    add("4 rate share", "achieved / configured", f"{share:.2f} %", ">= 95 % and <= 100 %", 95.0 <= share <= 100.0)
    add("4 rate share", "achieved rate", f"{achieved:.2f} /s", f"configured {rate:.0f} /s", None)
    add("4 rate share", "max requests in any 1 s window", f"{fake['max_in_window']}", f"<= {rate:.0f} (never more)",
        fake["max_in_window"] <= rate)


# --- 5. peak RSS against recipient count ------------------------------------------------


def peak_mib(result: dict[str, Any]) -> float:
    """The child's own peak RSS: VmHWM where /proc exists, else ru_maxrss."""
    kib = result["vm_hwm_kib"] if result.get("vm_hwm_kib") else result["peak_rss_kib"]
    return float(kib) / 1024


def scenario_rss(providers: ProviderProcess, sizes: Sizes, large_live: dict[str, Any] | None) -> None:
    small_n, large_n = sizes.rss_small, sizes.rss_large
    heading("5", f"Peak RSS, {small_n:,} vs {large_n:,} recipients (each a fresh process, its own VmHWM)",
            "live: the whole live fire in python -m bench.sms against the fake in its own process, so the\n"
            "fake's memory is not counted; dry-run: the same outbox/dispatcher and Twilio adapter on a\n"
            "recording transport, virtual time (no network). Flat = the large run peaks at most "
            f"{RSS_GROWTH_BOUND:.0%} above the small one")
    for mode in ("live", "dry-run"):
        small = run_sms(providers, small_n, SMS_RATE, mode)
        if mode == "live" and large_live is not None and large_live["count"] == large_n:
            large = large_live  # scenario 3 was exactly this run
        else:
            large = run_sms(providers, large_n, SMS_RATE, mode)
        for r in (small, large):
            assert r["verify"]["states"] == {"sent": r["count"]}, r["verify"]
        s_mb, l_mb = peak_mib(small), peak_mib(large)
        growth = l_mb / s_mb - 1
        tag = "live" if mode == "live" else "dry-run"
        say(f"    {tag}: ru_maxrss {small['peak_rss_kib'] / 1024:.1f} / {large['peak_rss_kib'] / 1024:.1f} MiB "
            "(includes the parent's high-water mark, inherited across fork+exec: not used)")
        add("5 peak RSS", f"{tag}: {small_n:,} recipients", f"{s_mb:.1f} MiB", "", None)
        add("5 peak RSS", f"{tag}: {large_n:,} recipients", f"{l_mb:.1f} MiB", "", None)
        add("5 peak RSS", f"{tag}: growth for {large_n // small_n}x recipients",
            f"{l_mb - s_mb:+.1f} MiB ({growth:+.1%})", f"<= {RSS_GROWTH_BOUND:+.0%}", growth <= RSS_GROWTH_BOUND)


# --- 7. SQLite vs PostgreSQL, one node -------------------------------------------------


def sms_ok(r: dict[str, Any]) -> bool:
    n, v, fake = r["count"], r["verify"], r["fake"]
    sent = v["attempt_outcomes"].get("sent", {})
    return bool(v["states"] == {"sent": n} and v["deliveries_not_one_attempt"] == 0
                and set(v["attempt_outcomes"]) == {"sent"} and sent.get("rows") == n and fake["count"] == n
                and fake["distinct_to"] == n and fake["duplicates"] == 0)


def scenario_backends(providers: ProviderProcess, cluster: Cluster, sizes: Sizes,
                      sqlite_run: dict[str, Any] | None) -> None:
    n = sizes.nodes_sms
    heading("7", f"SQLite vs PostgreSQL on one node, {n:,} SMS",
            f"the scenario-3 fire (python -m bench.sms: plan_alert + deliver in one fresh process, one node,\n"
            f"rate_per_second = {SMS_RATE:.0f}, fake latency uniform {SMS_JITTER[0] * 1000:.0f}-"
            f"{SMS_JITTER[1] * 1000:.0f} ms) with --db pointing at each backend;\n"
            "send phase = n / (outbox COMMIT -> deliver() returned, every outcome committed)")
    if not cluster.available():
        say(f"    skipped: no PostgreSQL server ({cluster.error})")
        return
    runs: dict[str, dict[str, Any]] = {}
    if sqlite_run is not None and sqlite_run["count"] == n and sqlite_run["rate"] == SMS_RATE:
        runs["SQLite"] = sqlite_run  # scenario 3 was exactly this run
        say("    SQLite: the scenario-3 run")
    else:
        runs["SQLite"] = run_sms(providers, n, SMS_RATE)
    runs["PostgreSQL"] = run_sms(providers, n, SMS_RATE, database=cluster.fresh())
    for name, r in runs.items():
        say(f"    {name}: plan_alert {r['plan_s']:.2f} s, outbox commit {r['commit_s']:.2f} s, send phase "
            f"{r['send_s']:.2f} s; states {r['verify']['states']}; fake {r['fake']['count']:,} requests, "
            f"{r['fake']['duplicates']} duplicates")
    for name, r in runs.items():
        rate = n / r["send_s"]
        add("7 backends", f"{name}: send phase (1 node)", f"{rate:,.0f} /s", ">= 1,000 /s", rate >= THROUGHPUT_TARGET)
    for name, r in runs.items():
        add("7 backends", f"  {name}: outbox commit of {n:,}", f"{r['commit_s']:.2f} s", "", None)
    ratio = (n / runs["PostgreSQL"]["send_s"]) / (n / runs["SQLite"]["send_s"])
    add("7 backends", "  PostgreSQL / SQLite send rate", f"{ratio:.2f} x", "", None)
    ok = all(sms_ok(r) for r in runs.values())
    add("7 backends", "all sent, 1 attempt each, fake got each once", "yes" if ok else "NO", "exact", ok)


# --- scenarios in a fresh process -------------------------------------------------------

CHILD_ROWS = "BENCH-ROWS "


def in_fresh_process(scenario: str, args: argparse.Namespace) -> None:
    """Run one scenario as ``python -m bench --only N --child`` and take its figures into this summary.

    Scenarios 14 and 15 run ``serve`` in the benchmark process. Run here, after the others, the
    server would share a heap with everything they left behind, and a cyclic (generation-2)
    collection walks all of it: measured, a median of 62 ms per collection at 116,000 tracked
    objects after scenarios 1-14, against medians of 25 and 44 ms in two fresh-process runs at
    70,000-82,000. In a child of its own the server's heap is about what a fresh `broadcaster
    serve` has. The child starts its own fakes (and its own throwaway PostgreSQL for 15); its
    output is passed through as it comes.
    """
    cmd = [sys.executable, "-m", "bench", "--only", scenario, "--child", "--lag-diagnosis", args.lag_diagnosis,
           *(["--quick"] if args.quick else []), *(["--gc-freeze"] if args.gc_freeze else [])]
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    rows: list[dict[str, Any]] | None = None
    for line in child.stdout:
        if line.startswith(CHILD_ROWS):
            rows = orjson.loads(line.removeprefix(CHILD_ROWS))
        else:
            print(line, end="", flush=True)
    if child.wait() != 0 or rows is None:
        say(f"    scenario {scenario} failed in its own process (exit code {child.returncode})")
        ROWS.append(Row(f"{scenario} (process)", "the scenario ran to its end", "NO", "exact", False))
        return
    ROWS.extend(Row(**row) for row in rows)


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Delivery-engine benchmark (bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test only")
    parser.add_argument("--only", default=",".join(str(n) for n in range(1, 20)),
                        help="comma-separated scenarios to run (default: all)")
    parser.add_argument("--lag-diagnosis", choices=("auto", "always", "never", "stacks"), default="auto",
                        help="scenario 15: run the instrumented diagnosis run when a bound is missed (auto), "
                        "always, never, or always with the loop-stack watchdog thread (stacks; it perturbs)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="scenario 15 as a what-if: gc.freeze() once the server has started (not a default run)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # see in_fresh_process
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    set_secrets()
    ensure_sample_signing_key()  # the sample channels.toml signs CAP with var/cap-signing (as `make demo` makes it)
    started = time.monotonic()
    load = os.getloadavg()
    if not args.child:
        kind = "quick smoke test: figures are not meaningful" if args.quick else "full"
        say(f"broadcaster delivery benchmark ({kind}); python {sys.version.split()[0]}; {os.cpu_count()} cores; "
            "load average at start " + " / ".join(f"{x:.2f}" for x in load)
            + " (1 / 5 / 15 min: other work on the machine moves the figures)")
        if sys.flags.dont_write_bytecode and not (REPO / "broadcaster" / "__pycache__").is_dir():
            say("note: PYTHONDONTWRITEBYTECODE is set and broadcaster/ has no bytecode cache, so every CLI process "
                "(11, 12, 17) compiles\n      the package's ~90 modules from source: run `python -m compileall -q "
                "broadcaster` first, or unset it")
    cluster = Cluster()  # PostgreSQL, started by the first scenario that needs it
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ProviderProcess() as providers:
        work = Path(tmp)
        large: dict[str, Any] | None = None
        if "1" in only:
            scenario_first_request(providers, work, sizes)
        if "2" in only:
            scenario_fanout(providers, work, sizes)
        if "3" in only:
            large = scenario_throughput(providers, sizes)
        if "4" in only:
            scenario_rate(providers, sizes)
        if "5" in only:
            scenario_rss(providers, sizes, large)
        if "11" in only:
            scenario_cli_startup(work, sizes.cli_runs)
        if "16" in only:
            scenario_cards(2 if args.quick else 10)
        if "18" in only:
            scenario_signing(20 if args.quick else 200)
        if "19" in only:
            scenario_failover(300 if args.quick else 3000)
        webhooks, telegrams, sms = sizes.mixed
        if "12" in only:
            scenario_cli_live(providers, work, {"webhook": webhooks, "telegram": telegrams, "sms": sms},
                              sizes.cli_live_runs, LATENCY_FANOUT)
        if "17" in only:
            scenario_cli_live_new_kinds(providers, work, sizes.new_kinds, sizes.cli_live_runs, LATENCY_FANOUT)
        if "13" in only:
            scenario_fanout_mixed(providers, work, sizes)
        if "14" in only:
            if args.child:
                scenario_serve_fanout(providers, work, sizes.per_kind, sizes.serve_fires, LATENCY_FANOUT)
            else:
                in_fresh_process("14", args)
        try:
            if "6" in only:
                scenario_nodes(providers, cluster, work, sizes.nodes_sms, NODES_RATE, SMS_JITTER, NODES_RATIO_TARGET)
            if "7" in only:
                scenario_backends(providers, cluster, sizes, large)
            if "8" in only:
                scenario_notify(providers, cluster, work, sizes.notify_fires, sizes.notify_poll, FIRST_BOUND_MS)
            if "9" in only:
                scenario_shared_rate(providers, cluster, work, sizes.shared_count, sizes.shared_rate, SMS_JITTER,
                                     SHARED_SHARE_BOUND)
            if "10" in only:
                scenario_fanout_nodes(providers, cluster, work, sizes.per_kind, LATENCY_FANOUT)
            if "15" in only:
                if args.child:
                    scenario_serve_lag(providers, cluster, work, sizes.lag_sms, sizes.lag_preview, SMS_RATE,
                                       SMS_JITTER, diagnosis=args.lag_diagnosis, freeze=args.gc_freeze)
                else:
                    in_fresh_process("15", args)
        finally:
            cluster.stop()
    if args.child:
        say(CHILD_ROWS + orjson.dumps([asdict(r) for r in ROWS]).decode())
        return 0
    summary()
    say(f"  total wall time {time.monotonic() - started:.0f} s; load average at the end "
        + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 1 if any(r.ok is False for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())

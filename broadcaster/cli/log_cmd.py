"""``broadcaster log`` and ``broadcaster resume``."""

from __future__ import annotations

import argparse
import time
from functools import partial

from rich.table import Table

from broadcaster.app import App, load_app
from broadcaster.cli.output import EXIT_FAILED, EXIT_OK, console, print_json
from broadcaster.engine.runner import deliver, run_mode
from broadcaster.store.sqlite import owner_is_dead
from broadcaster.timefmt import iso


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    log = commands.add_parser("log", help="the delivery log of an alert (or of every alert of a run): every attempt")
    log.add_argument("alert_id", help="an alert id, or a runbook run / rehearsal / schedule id (run-…, sch-…)")
    log.add_argument("--json", action="store_true", help="one JSON line per attempt")
    log.add_argument("--all", action="store_true", help="show every attempt (default: the first 200)")
    log.set_defaults(handler=cmd_log)
    resume = commands.add_parser("resume", help="finish or reconcile deliveries left by a crash")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(handler=cmd_resume)


def cmd_log(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    if args.alert_id.startswith(("run-", "sch-")):
        # A runbook run, rehearsal or scheduled fire: every alert of it, step by step.
        from broadcaster.runbooks.report import show_run_log

        return show_run_log(app, args.alert_id, as_json=args.json, limit=None if args.all else 200)
    alert = app.store.alert(args.alert_id)
    if args.json:
        for attempt in app.store.attempts(alert.id):
            print_json(attempt.as_json())
        return EXIT_OK
    show_summary(app, alert.id)
    show_attempts(app, alert.id, limit=None if args.all else 200)
    return EXIT_OK


def show_summary(app: App, alert_id: str) -> None:
    alert = app.store.alert(alert_id)
    out = console()
    tz = app.config.timezone
    follow_up = f" of {alert.references}" if alert.references else ""
    out.print(f"alert [bold]{alert.id}[/] · {alert.template} · {alert.mode} · {alert.msg_type}{follow_up}"
              f" · sent {iso(alert.sent_at, tz)} · expires {iso(alert.expires_at, tz)}")
    table = Table("channel", "sent", "pending", "sending", "unknown", "failed", "expired")
    for channel, counts in sorted(app.store.state_counts(alert_id).items()):
        table.add_row(channel, *(str(counts.get(s, 0)) for s in
                                 ("sent", "pending", "sending", "unknown", "failed", "expired")))
    out.print(table)


def show_attempts(app: App, alert_id: str, *, limit: int | None) -> None:
    table = Table("#", "channel", "recipient", "lang", "try", "outcome", "http", "code", "provider id", "started",
                  "ms", "detail")
    shown = 0
    total = 0
    for n, a in enumerate(app.store.attempts(alert_id), start=1):
        total += 1
        if limit is not None and shown >= limit:
            continue
        shown += 1
        table.add_row(str(n), a.channel, a.recipient or "-", a.language, str(a.attempt), a.outcome or "in-flight",
                      str(a.http_status or "-"), a.error_code or "-", a.provider_id or "-",
                      iso(a.started_at, app.config.timezone)[11:23], f"{a.latency_ms:.0f}" if a.latency_ms else "-",
                      (a.detail or "")[:60])
    console().print(table)
    if total > shown:
        console().print(f"… {total - shown} more attempt(s); use --all or --json")


def cmd_resume(args: argparse.Namespace) -> int:
    """Reclaim deliveries of dead processes, reconcile the unknown, finish the rest."""
    app = load_app(args.config, args.db)
    store = app.store
    recovered = store.recover_orphans(time.time(), owner_is_dead)
    alert_ids = store.unfinished_alerts()
    by_mode: dict[str, list[str]] = {}
    for alert_id in alert_ids:
        by_mode.setdefault(store.alert(alert_id).mode, []).append(alert_id)
    if not args.json:
        console().print(f"recovered {recovered} delivery(ies) left mid-attempt; {len(alert_ids)} alert(s) to finish")
    by_id = {c.id: c for c in app.config.channels}
    for mode, ids in by_mode.items():
        wanted = {c for alert_id in ids for c in store.alert(alert_id).channels}
        configs = [by_id[c] for c in wanted if c in by_id]
        run_mode(mode, partial(deliver, store, configs, mode, alert_ids=tuple(ids)))
    failed = 0
    summary = []
    for alert_id in alert_ids:
        counts = store.state_counts(alert_id)
        not_sent = sum(n for c in counts.values() for s, n in c.items() if s != "sent")
        failed += not_sent
        summary.append({"alert_id": alert_id, "states": counts})
    if args.json:
        print_json({"recovered": recovered, "alerts": summary})
    else:
        for alert_id in alert_ids:
            show_summary(app, alert_id)
    return EXIT_OK if failed == 0 else EXIT_FAILED

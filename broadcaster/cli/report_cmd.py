"""``broadcaster report ALERT_ID [--json | --html FILE]``: the after-action report of an alert."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from broadcaster.cli.output import EXIT_OK, console, print_json

if TYPE_CHECKING:
    from broadcaster.app.report import Report


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report", help="the after-action report of an alert: reach, latency, failures, time to correct")
    report.add_argument("alert_id")
    shape = report.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="the report as one JSON object")
    shape.add_argument("--html", metavar="FILE", help="write the self-contained HTML report (Arabic first) to FILE")
    report.set_defaults(handler=cmd_report)


async def cmd_report(args: argparse.Namespace) -> int:
    """Print or write the report. An unknown alert id exits 2, naming it; the report itself always exits 0."""
    from broadcaster.app.context import open_app
    from broadcaster.app.report import build_report
    from broadcaster.app.report_html import report_html
    from broadcaster.clock import in_thread

    async with open_app(args.config, args.db) as app:
        report = await build_report(app, args.alert_id, now=time.time())
    if args.json:
        print_json(report.as_json())
        return EXIT_OK
    if args.html:
        document = await in_thread(report_html, report, app.config.timezone)
        await in_thread(write_html, Path(args.html), document)
        console().print(f"wrote the report of {report.alert.id} to {args.html}")
        return EXIT_OK
    show_report(report)
    return EXIT_OK


def write_html(path: Path, document: str) -> None:
    from broadcaster.errors import InputError

    try:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(document, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        raise InputError(f"cannot write the report to {path}: {exc.strerror or exc}", where="--html") from None


def show_report(report: Report) -> None:
    from rich.markup import escape

    from broadcaster.states import state_word

    out = console()
    a = report.alert
    out.print(f"[bold]after-action report[/] {escape(a.id)}  {a.mode} {a.msg_type}  template {escape(a.template)}")
    out.print("[bold]reach[/] (channel / language: deliveries, recipients, states; receipts)")
    for r in report.reach:
        states = ", ".join(f"{state_word(s, a.mode)} {n}" for s, n in r.states.items())
        receipts = f"; delivered {r.delivered}, undelivered {r.undelivered}" if r.delivered is not None else ""
        out.print(f"  {escape(r.channel)} / {escape(r.language)}: {r.deliveries}, {r.recipients}, {states}{receipts}")
    out.print("[bold]commit-to-accepted latency[/] (s: p50 p90 p99 max)")
    for x in report.latency:
        out.print(f"  {escape(x.channel)}: {x.accepted} accepted, {x.p50_s} {x.p90_s} {x.p99_s} {x.max_s}")
    out.print(f"[bold]failures by reason[/] ({sum(report.retries.values())} retries)")
    for f in report.failures:
        out.print(f"  {f.reason}: {f.attempts} attempt(s), {f.final} final, on {', '.join(f.channels)}; "
                  f"e.g. {escape(f.example)}")
    if len(report.thread) > 1:
        out.print("[bold]thread[/]")
        for t in report.thread:
            correct = f", corrected after {t.time_to_correct_s} s" if t.time_to_correct_s is not None else ""
            out.print(f"  {t.msg_type} {escape(t.id)}{correct}")

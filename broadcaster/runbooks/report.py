"""Timelines and run tables, for people (rich) and for scripts (JSON)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.table import Table

from broadcaster.app import App
from broadcaster.cli.output import EXIT_OK, banner, console, print_json
from broadcaster.runbooks.durations import format_duration
from broadcaster.runbooks.records import RunRecord
from broadcaster.runbooks.rehearse import Rehearsal
from broadcaster.runbooks.store import run_store
from broadcaster.timefmt import iso_seconds


def rehearsal_json(app: App, result: Rehearsal) -> dict[str, Any]:
    tz = app.config.timezone
    return {
        "run_id": result.run.id,
        "runbook": result.runbook.id,
        "mode": result.run.mode,
        "start": iso_seconds(result.start, tz),
        "end": iso_seconds(result.end, tz),
        "span_s": round(result.span_s, 3),
        "wall_s": round(result.wall_s, 3),
        "inputs": result.run.inputs,
        "steps": [
            {
                "step": e.fired.step.id,
                "occurrence": e.fired.occurrence,
                "time": iso_seconds(e.fired.time, tz),
                "offset_s": round(e.fired.time - result.start, 3),
                "action": e.fired.step.label,
                "msg_type": e.fired.plan.alert.msg_type if e.fired.plan else None,
                "state": e.fired.state,
                "alert_id": e.fired.alert_id,
                "confirm": "auto-confirmed" if e.auto_confirmed else None,
                "channels": list(e.fired.plan.alert.channels) if e.fired.plan else [],
                "messages": [row.as_json() for row in e.fired.plan.rows] if e.fired.plan else [],
                "deliveries": e.fired.states,
                "detail": e.fired.detail,
                "warnings": e.fired.warnings,
            }
            for e in result.entries
        ],
        "warnings": result.warnings + [f"{e.fired.step.id} #{e.fired.occurrence}: {w}" for e in result.entries
                                       for w in e.fired.warnings],
    }


def show_timeline(app: App, result: Rehearsal) -> None:
    out = console()
    tz = app.config.timezone
    banner("dry-run")
    out.print(f"rehearsal [bold]{result.run.id}[/] · {result.runbook.name['ar']} / {result.runbook.name['en']} "
              f"· {result.runbook.source}")
    out.print("inputs: " + ", ".join(f"{k}={v['en'] if v['ar'] == v['en'] else v['ar'] + ' / ' + v['en']}"
                                     for k, v in result.run.inputs.items()), markup=False)
    shown: dict[str, set[str]] = {}
    for entry in result.entries:
        fired = entry.fired
        offset = format_duration(fired.time - result.start)
        flag = " · [black on yellow] auto-confirmed [/]" if entry.auto_confirmed else ""
        kind = fired.plan.alert.msg_type if fired.plan else fired.state
        out.rule(f"+{offset} · {iso_seconds(fired.time, tz)} · {fired.step.id} #{fired.occurrence} · "
                 f"{fired.step.label} · {kind}", align="left")
        if flag:
            out.print(f"waits for an operator{flag}")
        if fired.step.note and fired.occurrence == 0:
            out.print(fired.step.note, style="italic", markup=False)
        if fired.plan is None:
            out.print(f"[bold red]{fired.state}[/]: {fired.detail}")
            continue
        table = Table("channel", "kind", "lang", "length", "segments", "recipients", "cost (segments)",
                      title=f"alert {fired.alert_id} · deliveries: {fired.detail}", title_justify="left")
        for row in fired.plan.rows:
            r = row.rendered
            table.add_row(row.channel, row.kind, r.language, f"{r.length}/{r.limit} {r.unit}",
                          f"{r.segments} {r.encoding}" if r.segments else "-", str(row.recipients),
                          str(row.cost_segments) if row.kind == "sms" else "-")
        out.print(table)
        seen = shown.setdefault(fired.step.id, set())
        for row in fired.plan.rows:
            if row.kind not in ("sms", "x") or row.rendered.text in seen:
                continue
            seen.add(row.rendered.text)
            out.print(f"[dim]{row.kind} · {row.rendered.language}:[/]")
            out.print(row.rendered.text, markup=False)
        for warning in fired.warnings:
            out.print(f"[yellow]warning:[/] {warning}")
    out.rule()
    sms = sum(row.cost_segments for e in result.entries if e.fired.plan for row in e.fired.plan.rows
              if row.kind == "sms")
    alerts = sum(1 for e in result.entries if e.fired.plan)
    out.print(f"{alerts} alert(s) over {format_duration(result.span_s)} of simulated time, "
              f"{sms} SMS segment(s) in all; rehearsed in {result.wall_s:.2f} s; nothing left this machine")
    warnings = rehearsal_json(app, result)["warnings"]
    for warning in warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"log: broadcaster log {result.run.id}")


def run_json(app: App, run: RunRecord) -> dict[str, Any]:
    tz = app.config.timezone

    def when(ts: float | None) -> str | None:
        return iso_seconds(ts, tz) if ts is not None else None

    return {
        "run_id": run.id, "kind": run.kind, "runbook": run.runbook, "mode": run.mode, "state": run.state,
        "started_at": when(run.started_at), "finished_at": when(run.finished_at), "inputs": run.inputs,
        "steps": [
            {"step": r.step_id, "occurrence": r.occurrence, "state": r.state, "due_at": when(r.due_at),
             "confirmed_at": when(r.confirmed_at), "fired_at": when(r.fired_at), "alert_id": r.alert_id,
             "detail": r.detail}
            for r in run_store(app).run_steps(run.id)
        ],
    }


def show_run(app: App, run: RunRecord) -> None:
    tz = app.config.timezone
    rows = run_store(app).run_steps(run.id)
    counts = Counter(r.state for r in rows)
    table = Table("step", "#", "state", "due", "alert", "detail",
                  title=f"{run.id} · {run.kind} {run.runbook} · {run.mode} · {run.state} · started "
                        f"{iso_seconds(run.started_at, tz)} · " + ", ".join(f"{n} {s}" for s, n in counts.items()),
                  title_justify="left")
    for r in rows:
        style = {"missed": "bold red", "failed": "bold red", "awaiting": "yellow"}.get(r.state, "")
        table.add_row(r.step_id, str(r.occurrence), f"[{style}]{r.state}[/]" if style else r.state,
                      iso_seconds(r.due_at, tz) if r.due_at else "-", r.alert_id or "-", (r.detail or "")[:80])
    console().print(table)


def show_run_log(app: App, run_id: str, *, as_json: bool, limit: int | None) -> int:
    """``broadcaster log RUN_ID``: every alert of a run (or rehearsal), step by step."""
    from broadcaster.cli.log_cmd import show_attempts, show_summary

    run = run_store(app).run(run_id)
    rows = [r for r in run_store(app).run_steps(run.id) if r.alert_id and app.store.deliveries(r.alert_id)]
    if as_json:
        for row in rows:
            assert row.alert_id is not None
            for attempt in app.store.attempts(row.alert_id):
                print_json({**attempt.as_json(), "run_id": run.id, "step": row.step_id,
                            "occurrence": row.occurrence})
        return EXIT_OK
    show_run(app, run)
    for row in rows:
        assert row.alert_id is not None
        console().rule(f"{row.step_id} #{row.occurrence}", align="left")
        show_summary(app, row.alert_id)
        show_attempts(app, row.alert_id, limit=limit)
    return EXIT_OK

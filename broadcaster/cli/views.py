"""How the CLI shows plans, alerts, their attempts and runs to a person (rich tables)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from broadcaster.cli.display import shown
from broadcaster.cli.output import EXIT_OK, banner, console, print_json
from broadcaster.states import DeliveryState, Outcome, StepState, state_word

if TYPE_CHECKING:
    from rich.console import Console

    from broadcaster.app.context import App
    from broadcaster.app.rehearse import Rehearsal
    from broadcaster.config import Config
    from broadcaster.engine.outbox import Plan
    from broadcaster.runbooks.model import Runbook
    from broadcaster.store.records import RunRecord


def show_planned(config: Config, runbook: Runbook, result: Rehearsal) -> None:
    from rich.table import Table

    from broadcaster.timefmt import iso_seconds

    table = Table("when", "step", "action", "channels", "SMS segments", title=f"{runbook.id}: planned timeline "
                  "(confirm steps shown at their earliest)", title_justify="left")
    for e in result.entries:
        sms = sms_segments(e.fired.plan) if e.fired.plan else 0
        table.add_row(iso_seconds(e.fired.time, config.timezone), f"{e.fired.step.id} #{e.fired.occurrence}",
                      e.fired.step.label + (" (confirm)" if e.auto_confirmed else ""),
                      ",".join(e.fired.plan.alert.channels) if e.fired.plan else "-", str(sms))
    console().print(table)


def show_timeline(config: Config, result: Rehearsal) -> None:
    from rich.markup import escape
    from rich.table import Table

    from broadcaster.app.rehearse import rehearsal_json
    from broadcaster.runbooks.durations import format_duration
    from broadcaster.timefmt import iso_seconds

    out = console()
    tz = config.timezone
    banner("dry-run")
    names = f"{result.runbook.name['ar']} / {result.runbook.name['en']} · {result.runbook.source}"
    out.print(f"rehearsal [bold]{result.run.id}[/] · {escape(shown(names, out))}")
    out.print(shown("inputs: " + ", ".join(f"{k}={v['en'] if v['ar'] == v['en'] else v['ar'] + ' / ' + v['en']}"
                                           for k, v in result.run.inputs.items()), out), markup=False)
    printed: dict[str, set[str]] = {}
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
            out.print(shown(fired.step.note, out, wrap=True), style="italic", markup=False)
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
        seen = printed.setdefault(fired.step.id, set())
        for row in fired.plan.rows:
            if row.kind not in ("sms", "x") or row.rendered.text in seen:
                continue
            seen.add(row.rendered.text)
            out.print(f"[dim]{row.kind} · {row.rendered.language}:[/]")
            out.print(shown(row.rendered.text, out, wrap=True), markup=False)
        for warning in fired.warnings:
            out.print(f"[yellow]warning:[/] {warning}")
    out.rule()
    sms = sum(sms_segments(e.fired.plan) for e in result.entries if e.fired.plan)
    alerts = sum(1 for e in result.entries if e.fired.plan)
    out.print(f"{alerts} alert(s) over {format_duration(result.span_s)} of simulated time, "
              f"{sms} SMS segment(s) in all; rehearsed in {result.wall_s:.2f} s; nothing left this machine")
    for warning in rehearsal_json(config, result)["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"log: broadcaster log {result.run.id}")


STEP_STYLES = {StepState.MISSED: "bold red", StepState.FAILED: "bold red", StepState.AWAITING: "yellow",
               StepState.HELD: "bold yellow"}


async def show_run(app: App, run: RunRecord) -> None:
    from rich.table import Table

    from broadcaster.timefmt import iso_seconds

    tz, out = app.config.timezone, console()
    rows = await app.store.runs.steps(run.id)
    counts = Counter(str(r.state) for r in rows)
    table = Table("step", "#", "state", "due", "alert", "detail",
                  title=f"{run.id} · {run.kind} {run.runbook} · {run.mode} · {run.state} · started "
                        f"{iso_seconds(run.started_at, tz)} · " + ", ".join(f"{n} {s}" for s, n in counts.items()),
                  title_justify="left")
    for r in rows:
        style = STEP_STYLES.get(r.state, "")
        table.add_row(r.step_id, str(r.occurrence), f"[{style}]{r.state}[/]" if style else str(r.state),
                      iso_seconds(r.due_at, tz) if r.due_at else "-", r.alert_id or "-",
                      shown((r.detail or "")[:80], out))
    out.print(table)


async def show_run_log(app: App, run_id: str, *, as_json: bool, limit: int | None) -> int:
    """``broadcaster log RUN_ID``: every alert of a run (or rehearsal), step by step."""
    run = await app.store.runs.get(run_id)
    rows = [r for r in await app.store.runs.steps(run.id)
            if r.alert_id and await app.store.alerts.count(r.alert_id)]
    if as_json:
        for row in rows:
            assert row.alert_id is not None
            async for attempt in app.store.alerts.attempts(row.alert_id):
                print_json({**attempt.as_json(), "mode": str(run.mode), "run_id": run.id, "step": row.step_id,
                            "occurrence": row.occurrence})
        return EXIT_OK
    await show_run(app, run)
    for row in rows:
        assert row.alert_id is not None
        console().rule(f"{row.step_id} #{row.occurrence}", align="left")
        await show_summary(app, row.alert_id)
        await show_attempts(app, row.alert_id, limit=limit)
    return EXIT_OK


async def show_summary(app: App, alert_id: str) -> None:
    from rich.table import Table

    from broadcaster.timefmt import iso

    alert = await app.store.alerts.get(alert_id)
    out = console()
    tz = app.config.timezone
    follow_up = f" of {alert.references}" if alert.references else ""
    out.print(f"alert [bold]{alert.id}[/] · {alert.template} · {alert.mode} · {alert.msg_type}{follow_up}"
              f" · {state_word(DeliveryState.SENT, alert.mode)} {iso(alert.sent_at, tz)}"
              f" · expires {iso(alert.expires_at, tz)}")
    columns = (DeliveryState.SENT, DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.UNKNOWN,
             DeliveryState.FAILED, DeliveryState.EXPIRED)
    table = Table("channel", *(state_word(s, alert.mode) for s in columns))  # a dry-run's "sent" is "recorded"
    for channel, counts in sorted((await app.store.alerts.state_counts(alert_id)).items()):
        table.add_row(channel, *(str(counts.get(s, 0)) for s in columns))
    out.print(table)


async def show_attempts(app: App, alert_id: str, *, limit: int | None) -> None:
    from rich.table import Table

    from broadcaster.timefmt import iso

    table = Table("#", "channel", "recipient", "lang", "try", "outcome", "http", "code", "provider id", "started",
                  "ms", "detail")
    out = console()
    mode = (await app.store.alerts.get(alert_id)).mode
    listed = total = 0
    async for a in app.store.alerts.attempts(alert_id):
        total += 1
        if limit is not None and listed >= limit:
            continue
        listed += 1
        table.add_row(str(total), a.channel, a.recipient or "-", a.language, str(a.attempt),
                      state_word(a.outcome, mode) if a.outcome else "in-flight", str(a.http_status or "-"),
                      a.error_code or "-", a.provider_id or "-",
                      iso(a.started_at, app.config.timezone)[11:23], f"{a.latency_ms:.0f}" if a.latency_ms else "-",
                      # A failover move says whole where it went and why; other details are cut to fit.
                      shown((a.detail or "") if a.outcome == Outcome.MOVED else (a.detail or "")[:60], out))
    out.print(table)
    if total > listed:
        out.print(f"… {total - listed} more attempt(s); use --all or --json")


def show_preview(plan: Plan, out: Console | None = None) -> None:
    """Every message: its channel, length, SMS segments, recipients and cost; then each distinct text once,
    headed by every channel (and language) that sends it, as its reader will see it: a Telegram message
    as Telegram shows it (no tags, entities decoded), Arabic shaped and in display order on a terminal."""
    from rich.table import Table

    out = out or console()
    table = Table("channel", "kind", "lang", "length", "segments", "recipients", "cost (segments)",
                  title=shown(f"{plan.template.id}: {plan.template.title['ar']} / {plan.template.title['en']}", out))
    for row in plan.rows:
        r = row.rendered
        table.add_row(row.channel, row.kind, r.language, f"{r.length}/{r.limit} {r.unit}",
                      f"{r.segments} {r.encoding}" if r.segments else "-", str(row.recipients),
                      str(row.cost_segments) if row.kind == "sms" else "-")
    out.print(table)
    out.print(sms_summary(plan))
    senders: dict[str, list[str]] = {}
    for row in plan.rows:
        label = f"{row.channel} ({row.kind}, {row.rendered.language})"
        labels = senders.setdefault(as_read(row.kind, row.rendered.text), [])
        if label not in labels:
            labels.append(label)
    for text, labels in senders.items():
        out.rule(", ".join(labels), align="left")
        out.print(shown(text, out, wrap=True), markup=False)


def sms_segments(plan: Plan) -> int:
    """What a plan's SMS cost in segments, each phone once (one SMS per phone per alert)."""
    return plan.sms_total.segments


def sms_summary(plan: Plan) -> str:
    """The SMS total as the commit will send it: each phone once, saying how many are on more than one list."""
    sms = plan.sms_total
    line = f"SMS: {sms.phones} recipient(s), {sms.segments} segment(s) in all"
    if sms.duplicates:
        line += (f" (one SMS per phone: {sms.listed} listed on the channels, {sms.duplicates} repeat(s) counted once; "
                 f"{sms.on_several} phone(s) on more than one list)")
    return line


def as_read(kind: str, text: str) -> str:
    """A message's text as its reader sees it: Telegram's HTML parse mode drops the tags and decodes
    the entities (``<b>`` makes the headline bold; ``&amp;`` is ``&``)."""
    if kind == "telegram":
        from broadcaster.text.lengths import telegram_text

        return telegram_text(text)
    return text

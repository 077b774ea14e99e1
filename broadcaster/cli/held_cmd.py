"""``broadcaster held`` and ``broadcaster release``: deliveries waiting for an operator's decision.

A channel with ``on_unknown = "hold"`` cannot ask its provider whether a
timed-out post went out, so it neither resends nor gives up: the delivery stays
``unknown`` until an operator looks at the channel and says which it was.
``release --resend`` sends again (a worker, ``resume`` or the next run picks it
up); ``release --mark-sent`` records it as posted. Either is audited with the
operator's name.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from broadcaster.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK, console, err_console, print_json


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    held = commands.add_parser("held", help="deliveries that may have gone out and wait for an operator's decision")
    held.add_argument("alert_id", nargs="?", help="only this alert")
    held.add_argument("--json", action="store_true")
    held.set_defaults(handler=cmd_held)

    release = commands.add_parser("release", help="decide about an alert's held deliveries on one channel")
    release.add_argument("alert_id")
    release.add_argument("--channel", required=True, help="the channel whose held deliveries you checked")
    decision = release.add_mutually_exclusive_group(required=True)
    decision.add_argument("--resend", action="store_true", help="you checked: it is NOT on the channel; send again")
    decision.add_argument("--mark-sent", action="store_true", help="you checked: it IS on the channel; record it sent")
    release.add_argument("--yes", action="store_true", help="skip the typed confirmation")
    release.set_defaults(handler=cmd_release)


async def cmd_held(args: argparse.Namespace) -> int:
    from rich.table import Table

    from broadcaster.app.context import open_app

    async with open_app(args.config, args.db) as app:
        rows = await app.store.alerts.held(args.alert_id)
    if args.json:
        print_json([{"alert_id": d.alert_id, "channel": d.channel_id, "recipient": d.recipient,
                     "language": d.language, "attempts": d.attempts, "last_error": d.last_error} for d in rows])
        return EXIT_OK
    if not rows:
        console().print("nothing is held")
        return EXIT_OK
    table = Table("alert", "channel", "language", "recipient", "attempts", "last error", title="held deliveries")
    for d in rows:
        table.add_row(d.alert_id, d.channel_id, d.language, d.recipient or "-", str(d.attempts), d.last_error or "")
    console().print(table)
    console().print("check each channel, then `broadcaster release ALERT --channel ID --resend | --mark-sent`")
    return EXIT_OK


async def cmd_release(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.fire import seal_if_finished
    from broadcaster.cli.prompts import actor
    from broadcaster.errors import InputError

    async with open_app(args.config, args.db) as app:
        alert = await app.store.alerts.get(args.alert_id)
        held = [d for d in await app.store.alerts.held(alert.id) if d.channel_id == args.channel]
        if not held:
            raise InputError(f"alert {alert.id} has no held deliveries on channel {args.channel!r}",
                             where="--channel")
        verb = "SEND AGAIN" if args.resend else "RECORD AS SENT"
        console().print(f"{len(held)} held delivery(ies) of {alert.id} ({alert.mode}) on {args.channel}: {verb}")
        if not args.yes:
            answer = await asyncio.to_thread(input, f"Type the channel id ({args.channel}) to confirm: ")
            if answer.strip() != args.channel:
                err_console().print("not confirmed: nothing changed.", style="bold red")
                return EXIT_INVALID
        who = actor()
        note = f"released by {who}: " + ("not on the channel, sent again" if args.resend
                                         else "confirmed on the channel")
        changed = await app.store.alerts.release_held(alert.id, args.channel, resend=args.resend, now=time.time(),
                                                      note=note)
        await app.audit(who, "release_held", {"alert_id": alert.id, "channel": args.channel, "deliveries": changed,
                                              "decision": "resend" if args.resend else "mark_sent"})
        await seal_if_finished(app, alert.id)  # the last held delivery recorded: its final states are anchored
    if args.resend:
        console().print(f"{changed} delivery(ies) due now: a running worker sends them, or run `broadcaster resume`")
    else:
        console().print(f"{changed} delivery(ies) recorded as sent")
    return EXIT_OK if changed == len(held) else EXIT_FAILED

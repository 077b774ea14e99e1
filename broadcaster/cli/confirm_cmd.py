"""``broadcaster confirm ALERT_ID``: the second officer releases a held two-person alert.

The same rules as ``POST /api/alerts/{id}/confirm`` (:func:`broadcaster.app.fire.confirm`):
a verified user (:mod:`broadcaster.cli.identity`) with the officer or approver
role, other than the officer who fired, inside the confirmation window. Before
anything goes, it shows what the public will see (every channel's text, the
audience, the cost) under the LIVE banner and asks for the alert id to be typed
(unless ``--yes``). Then it delivers in this process, as ``fire --live`` does,
and prints the same result (``--json`` as ``fire --json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from broadcaster.cli.output import EXIT_INVALID, banner, console, err_console

if TYPE_CHECKING:
    from rich.console import Console

    from broadcaster.app.context import App
    from broadcaster.app.fire import Going
    from broadcaster.app.users import User
    from broadcaster.engine.outbox import Plan
    from broadcaster.store.pending import PendingFire


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    confirm = commands.add_parser("confirm", help="second officer: see a held two-person alert, then release it")
    confirm.add_argument("alert_id")
    confirm.add_argument("--yes", action="store_true", help="skip the typed confirmation (the alert id)")
    confirm.add_argument("--json", action="store_true", help="print one JSON object for scripts (as fire --json)")
    confirm.set_defaults(handler=cmd_confirm)


async def cmd_confirm(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.fire import held_plan
    from broadcaster.app.users import check_confirm
    from broadcaster.cli.identity import permitted, require_identity
    from broadcaster.cli.prompts import confirm_release
    from broadcaster.engine.outbox import count_phones

    async with open_app(args.config, args.db) as app:
        user = await require_identity(args, app, "confirming a two-person alert")
        await permitted(app, user, lambda: check_confirm(user), action="confirm", alert_id=args.alert_id)
        pending, plan = await held_plan(app, args.alert_id, user, now=time.time())
        await count_phones(plan)  # the cost the second officer confirms counts each phone once
        show_held_alert(app, pending, plan, err_console() if args.json else console())
        if not args.yes and not await confirm_release(args.alert_id):
            err_console().print("not confirmed: nothing was sent.", style="bold red")
            return EXIT_INVALID
        return await release(args, app, user)


def show_held_alert(app: App, pending: PendingFire, plan: Plan, out: Console) -> None:
    """What the public will see if it is released: the request, every channel's text, audience and cost."""
    from broadcaster.cli.views import show_preview
    from broadcaster.timefmt import iso_seconds

    tz = app.config.timezone
    alert = plan.alert
    out.print(f"alert [bold]{alert.id}[/] · {plan.template.id} · {alert.msg_type} · fired by "
              f"[bold]{pending.requested_by}[/] at {iso_seconds(pending.requested_at, tz)} · awaits a second "
              f"officer until {iso_seconds(pending.confirm_by, tz)}")
    out.print(f"areas: {', '.join(alert.areas) or '-'} · channels: {', '.join(alert.channels)}", markup=False)
    show_preview(plan, out)
    banner("live", out)


async def release(args: argparse.Namespace, app: App, user: User) -> int:
    """Confirm and deliver here; return as ``fire`` does (0 all sent, 1 some did not go out)."""
    from broadcaster.app.fire import confirm
    from broadcaster.cli.fire_cmd import run_and_report

    loop = asyncio.get_running_loop()
    committed: asyncio.Future[Any] = loop.create_future()
    delivery: asyncio.Task[int] | None = None

    def on_commit() -> None:
        if not committed.done():
            committed.set_result(None)

    async def start(going: Going) -> None:
        """Deliver in the background; return once the outbox is committed (or raise why it could not be)."""
        nonlocal delivery
        delivery = asyncio.ensure_future(run_and_report(app, going.plan, as_json=args.json, committed=on_commit))
        await asyncio.wait({committed, delivery}, return_when=asyncio.FIRST_COMPLETED)
        if committed.done():
            return
        delivery.result()  # raises what stopped it before the commit: the fire waits again
        raise RuntimeError(f"the delivery of {going.plan.alert.id} ended before its alert was committed")

    try:
        await confirm(app, args.alert_id, user=user, now=time.time(), start=start)
    except Exception:
        if delivery is not None and committed.done():
            # Committed, so going out: see it through, then report what failed after the commit.
            with contextlib.suppress(Exception):
                await delivery
        raise
    assert delivery is not None
    return await delivery

"""What the CLI asks of the person at the terminal, and who it says they are.

A live fire shows what will go out and waits for the officer to type the
template (or runbook) id; releasing a held two-person alert, its alert id.
Commands run without an identity (:mod:`broadcaster.cli.identity`) are audited
under the shell user. SIGTERM ends a long-running command as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from broadcaster.cli.output import banner, err_console
from broadcaster.cli.views import show_preview

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from broadcaster.engine.outbox import Plan
    from broadcaster.runbooks.model import Runbook
    from broadcaster.templates.catalogue import Catalogue


async def confirm_live_run(runbook: Runbook) -> bool:
    banner("live")
    if not sys.stdin.isatty():
        err_console().print("a live run needs a typed confirmation on a terminal, or --yes", style="bold red")
        return False
    answer = await asyncio.to_thread(input, f"Type the runbook id ({runbook.id}) to run it LIVE: ")
    return answer.strip() == runbook.id


def stop_on_sigterm() -> Callable[[], bool]:
    """Let SIGTERM (how a service manager stops a service) end the running command as Ctrl-C does.

    The scheduler host then gives its lead up and signs its node off, so another
    host takes over at its next poll instead of waiting for the lease to run out.
    Returns a function that tells whether SIGTERM came.
    """
    came: list[bool] = []
    task = asyncio.current_task()

    def stop() -> None:
        came.append(True)
        if task is not None:
            task.cancel()

    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # only the main thread gets signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    return lambda: bool(came)


def actor() -> str:
    """Who the audit log names for a CLI command."""
    return f"cli:{getpass.getuser()}"


def inputs_from(args: argparse.Namespace, catalogue: Catalogue, tz: ZoneInfo) -> dict[str, dict[str, str]]:
    """``--var`` values, or the template's examples (relative times made absolute from this moment)."""
    from broadcaster.templates.variables import example_inputs, parse_var_args

    if args.use_examples:
        return example_inputs(catalogue.get(args.template), time.time(), tz)
    return parse_var_args(args.var)


async def confirm_live(plan: Plan) -> bool:
    """Show what will go out, then make the officer type the template id."""
    from broadcaster.engine.outbox import count_phones

    await count_phones(plan)  # the cost the officer confirms counts each phone once
    show_preview(plan)
    banner("live")
    if not sys.stdin.isatty():
        err_console().print("a live fire needs a typed confirmation on a terminal, or --yes", style="bold red")
        return False
    answer = await asyncio.to_thread(input, f"Type the template id ({plan.template.id}) to send this LIVE alert: ")
    return answer.strip() == plan.template.id



async def confirm_release(alert_id: str) -> bool:
    """The second officer of a two-person alert types its id to release it (the preview is shown first)."""
    if not sys.stdin.isatty():
        err_console().print("releasing a live alert needs a typed confirmation on a terminal, or --yes",
                            style="bold red")
        return False
    answer = await asyncio.to_thread(input, f"Type the alert id ({alert_id}) to release this LIVE alert: ")
    return answer.strip() == alert_id

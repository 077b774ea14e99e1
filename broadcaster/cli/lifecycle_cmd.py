"""``broadcaster update`` and ``broadcaster cancel``: follow-ups threaded under the original."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from broadcaster.app import App
from broadcaster.cli.fire_cmd import add_mode_options, confirm_live, guarded_app, run_plan
from broadcaster.cli.output import EXIT_INVALID, console, problem
from broadcaster.engine.lifecycle import plan_cancel, plan_update, withdraw_original
from broadcaster.engine.outbox import Plan
from broadcaster.templates.variables import parse_var_args


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = commands.add_parser("update", help="a new alert that updates an earlier one, on the same channels")
    update.add_argument("alert_id")
    update.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="values that changed; the rest are taken from the original")
    add_mode_options(update)
    update.set_defaults(handler=cmd_update)
    cancel = commands.add_parser("cancel", help="the pre-approved correction of a false or mistaken alert")
    cancel.add_argument("alert_id")
    add_mode_options(cancel)
    cancel.set_defaults(handler=cmd_cancel)


def cmd_update(args: argparse.Namespace) -> int:
    overrides = parse_var_args(args.var)
    return _follow_up(args, lambda app: plan_update(app, args.alert_id, overrides, mode=args.mode, now=time.time()))


def cmd_cancel(args: argparse.Namespace) -> int:
    return _follow_up(args, lambda app: plan_cancel(app, args.alert_id, mode=args.mode, now=time.time()))


def _follow_up(args: argparse.Namespace, make_plan: Callable[[App], Plan]) -> int:
    with guarded_app(args) as app:
        return _run(args, app, make_plan)


def _run(args: argparse.Namespace, app: App, make_plan: Callable[[App], Plan]) -> int:
    plan = make_plan(app)
    if args.mode == "live" and not args.yes and not confirm_live(plan):
        problem("not confirmed: nothing was sent.", style="bold red")
        return EXIT_INVALID
    # Withdraw first, so no queued copy of a false alert leaves after its correction.
    withdrawn = withdraw_original(app, plan)
    if withdrawn and not args.json:
        console().print(f"withdrew {withdrawn} undelivered message(s) of {plan.alert.references}")
    return run_plan(app, plan, args.mode, as_json=args.json)

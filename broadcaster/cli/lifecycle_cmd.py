"""``broadcaster update`` and ``broadcaster cancel``: follow-ups threaded under the original."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from broadcaster.cli.output import add_mode_options

if TYPE_CHECKING:
    from broadcaster.app.fire import Request


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


async def cmd_update(args: argparse.Namespace) -> int:
    from broadcaster.app.fire import Request
    from broadcaster.states import Mode
    from broadcaster.templates.variables import parse_var_args

    request = Request("update", Mode(args.mode), original=args.alert_id, overrides=parse_var_args(args.var))
    return await _follow_up(args, request)


async def cmd_cancel(args: argparse.Namespace) -> int:
    from broadcaster.app.fire import Request
    from broadcaster.states import Mode

    return await _follow_up(args, Request("cancel", Mode(args.mode), original=args.alert_id))


async def _follow_up(args: argparse.Namespace, request: Request) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.cli.fire_cmd import send

    async with open_app(args.config, args.db) as app:
        return await send(args, app, request)

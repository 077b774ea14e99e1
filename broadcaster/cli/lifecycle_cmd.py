"""``broadcaster update``, ``cancel`` and ``all-clear``: follow-ups threaded under the original (previewed by
:mod:`broadcaster.cli.follow_up_preview`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from broadcaster.cli.output import add_mode_options

if TYPE_CHECKING:
    from broadcaster.app.fire import Request


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = commands.add_parser("update", help="a new alert that updates an earlier one, on the same channels; "
                                 "its texts start \"تحديث: / Update:\"")
    update.add_argument("alert_id")
    update.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="values that changed; the rest are taken from the original")
    add_mode_options(update)
    _log_option(update)
    update.set_defaults(handler=cmd_update)
    cancel = commands.add_parser("cancel", help="the pre-approved cancel of an alert: sent in error, or called off")
    cancel.add_argument("alert_id")
    cancel.add_argument("--reason", choices=("error", "called_off"), default="error",
                        help="error: it was sent in error (default); called_off: what it announced will not happen "
                             "(a planned closure called off)")
    add_mode_options(cancel)
    _log_option(cancel)
    cancel.set_defaults(handler=cmd_cancel)
    clear = commands.add_parser("all-clear", help="the all-clear of an alert, to its channels and recipients: "
                                "road_reopened after a road closure, else all_clear")
    clear.add_argument("alert_id")
    clear.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                       help="e.g. reopened=... or ended=... (default now); the rest come from the original")
    add_mode_options(clear)
    _log_option(clear)
    clear.set_defaults(handler=cmd_all_clear)


def _log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", action="store_true",
                        help="print the delivery log when done (with --dry-run, every channel's text first)")


async def cmd_update(args: argparse.Namespace) -> int:
    from broadcaster.app.fire import Request
    from broadcaster.states import Mode
    from broadcaster.templates.variables import parse_var_args

    request = Request("update", Mode(args.mode), original=args.alert_id, overrides=parse_var_args(args.var))
    return await _follow_up(args, request)


async def cmd_cancel(args: argparse.Namespace) -> int:
    from broadcaster.app.fire import Request
    from broadcaster.states import CancelReason, Mode

    return await _follow_up(args, Request("cancel", Mode(args.mode), original=args.alert_id,
                                          reason=CancelReason(args.reason)))


async def cmd_all_clear(args: argparse.Namespace) -> int:
    from broadcaster.app.fire import Request
    from broadcaster.states import Mode
    from broadcaster.templates.variables import parse_var_args

    request = Request("all_clear", Mode(args.mode), original=args.alert_id, overrides=parse_var_args(args.var))
    return await _follow_up(args, request)


async def _follow_up(args: argparse.Namespace, request: Request) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.cli.fire_cmd import send

    async with open_app(args.config, args.db) as app:
        return await send(args, app, request)

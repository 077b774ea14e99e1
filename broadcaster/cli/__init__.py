"""``broadcaster``: the command line.

Exit codes: 0 all done, 1 some deliveries failed, 2 invalid input, a missing or
refused identity, or a role that may not (nothing sent).

Every command is an ``async`` handler that parses, confirms, calls the
application layer (:mod:`broadcaster.app`) and renders. :func:`main` runs it on
the event loop its mode needs: a dry-run fire, update or cancel runs on a
virtual-time loop inside the network guard, which lets through the database
alone; everything else on a plain loop. Command modules import nothing heavy at
import time, so ``broadcaster --help`` loads no SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from broadcaster.cli import (
    cap_cmd,
    channels_cmd,
    confirm_cmd,
    db_cmd,
    fire_cmd,
    held_cmd,
    lifecycle_cmd,
    log_cmd,
    node_cmd,
    report_cmd,
    runbook_cmd,
    schedule_cmd,
    service_cmd,
    templates_cmd,
    users_cmd,
)
from broadcaster.cli.identity import add_token_option
from broadcaster.cli.output import EXIT_INVALID, err_console, problem
from broadcaster.cli.pipe import quiet_broken_pipe
from broadcaster.errors import Forbidden, InputError, Refusal, StoreError, VariableError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster",
        description="Put one pre-approved bilingual alert on every official channel at once.",
    )
    parser.add_argument("--config", help="channels.toml to use (env BROADCASTER_CONFIG; default ./channels.toml)")
    parser.add_argument("--db", help="database to use (env BROADCASTER_DB; default from channels.toml)")
    add_token_option(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (templates_cmd, channels_cmd, fire_cmd, lifecycle_cmd, log_cmd, cap_cmd, runbook_cmd,
                   schedule_cmd, service_cmd, node_cmd, db_cmd, held_cmd, confirm_cmd, users_cmd, report_cmd):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with quiet_broken_pipe():
            code: int = run(args)
    except InputError as exc:
        problem(f"error: {exc}", style="bold red")
        if isinstance(exc, VariableError) and exc.refusal is Refusal.REQUIRED and hasattr(args, "var"):
            problem("give each with --var NAME=VALUE (or NAME.ar=… and NAME.en=… for text)")
        problem("nothing was sent.")
        return EXIT_INVALID
    except Forbidden as exc:
        problem(f"error: not allowed: {exc}", style="bold red")
        problem("nothing was sent.")
        return EXIT_INVALID
    except StoreError as exc:
        problem(f"error: the database: {exc}", style="bold red")
        return EXIT_INVALID
    except KeyboardInterrupt:
        err_console().print("interrupted; run `broadcaster resume` to finish or reconcile deliveries", style="red")
        return 130
    return code


def run(args: argparse.Namespace) -> int:
    """Run the command's handler on the loop its mode needs."""
    if getattr(args, "virtual", False) and getattr(args, "mode", None) == "dry-run":
        from broadcaster.app.context import database_of
        from broadcaster.clock import run_virtual
        from broadcaster.netguard import no_network
        from broadcaster.store import address_of

        database = address_of(database_of(args.config, args.db))
        # Dry-run is enforced, not intended: nothing but the database may be reached.
        with no_network(allow=[database] if database else []):
            result: int = run_virtual(args.handler(args))
        return result
    code: int = asyncio.run(args.handler(args))
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

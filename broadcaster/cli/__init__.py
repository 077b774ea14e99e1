"""``broadcaster``: the command line.

Exit codes: 0 all done, 1 some deliveries failed, 2 invalid input (nothing sent).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import broadcaster.cli.cap_cmd as cap_cmd
import broadcaster.cli.runbook_cmd as runbook_cmd
import broadcaster.cli.schedule_cmd as schedule_cmd
import broadcaster.cli.service_cmd as service_cmd
from broadcaster.app import closing_apps
from broadcaster.cli import channels_cmd, fire_cmd, held_cmd, lifecycle_cmd, log_cmd, node_cmd, templates_cmd
from broadcaster.cli.output import EXIT_INVALID, err_console, problem
from broadcaster.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster",
        description="Put one pre-approved bilingual alert on every official channel at once.",
    )
    parser.add_argument("--config", help="channels.toml to use (env BROADCASTER_CONFIG; default ./channels.toml)")
    parser.add_argument("--db", help="database to use (env BROADCASTER_DB; default from channels.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    templates_cmd.register(commands)
    channels_cmd.register(commands)
    fire_cmd.register(commands)
    lifecycle_cmd.register(commands)
    log_cmd.register(commands)
    cap_cmd.register(commands)
    runbook_cmd.register(commands)
    schedule_cmd.register(commands)
    service_cmd.register(commands)
    node_cmd.register(commands)
    held_cmd.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with closing_apps():
            code: int = args.handler(args)
    except InputError as exc:
        problem(f"error: {exc}", style="bold red")
        problem("nothing was sent.")
        return EXIT_INVALID
    except KeyboardInterrupt:
        err_console().print("interrupted; run `broadcaster resume` to finish or reconcile deliveries", style="red")
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

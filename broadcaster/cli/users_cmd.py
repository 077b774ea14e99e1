"""``broadcaster users add | list | remove | role | rotate``: local administration of API users.

These need access to the database, not a token, so the first officer can always
be created. Every change is written with its audit row (the shell user as actor),
and reaches a running ``broadcaster serve`` within a second. A new or rotated
token is printed once, as the last line; it expires after ``--expires``, or
channels.toml's ``token_expiry`` (90 days unless set).
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

from broadcaster.cli.output import EXIT_OK, console, print_json

if TYPE_CHECKING:
    from broadcaster.config import Config
    from broadcaster.secret import Secret

ROLES = ("viewer", "operator", "officer", "approver")  # as broadcaster.app.users.ROLES (kept light for --help)
ROLE_HELP = "viewer | operator (dry-run, exercise) | officer (live) | approver (approves, second-signs)"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="API users, their roles and tokens (local administration)")
    sub = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="create a user; prints the new API token once, as the last line")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES, help=ROLE_HELP)
    _expires_option(add)
    add.set_defaults(handler=cmd_add)
    listing = sub.add_parser("list", help="users: name, role, created, expires (never a token)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    remove = sub.add_parser("remove", help="delete a user: their token stops working (a running server: within 1 s)")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_remove)
    role = sub.add_parser("role", help="change a user's role (a running server: within 1 s)")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES, help=ROLE_HELP)
    role.set_defaults(handler=cmd_role)
    rotate = sub.add_parser("rotate", help="a new token for a user, printed once as the last line; the old one is "
                                           "dead at once")
    rotate.add_argument("name")
    _expires_option(rotate)
    rotate.set_defaults(handler=cmd_rotate)


def _expires_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expires", metavar="DURATION",
                        help="how long the token lives, e.g. 90d, 12h, P30D (default: token_expiry in channels.toml, "
                             "else 90d)")


def settings(args: argparse.Namespace, *, need_config: bool) -> tuple[str, Config | None]:
    """The database, and channels.toml when it loads (for token_expiry and the time zone).

    A database named by --db or BROADCASTER_DB is reachable even when channels.toml
    is broken, as long as the command needs nothing from it.
    """
    from broadcaster.app.context import config_path
    from broadcaster.channels.registry import KINDS
    from broadcaster.config import load_config
    from broadcaster.errors import ConfigError

    given = args.db or os.environ.get("BROADCASTER_DB")
    try:
        config = load_config(config_path(args.config), KINDS)
    except ConfigError as exc:
        if need_config:
            raise ConfigError(f"{exc} (the default token lifetime, token_expiry, is read from it; or pass "
                              "--expires DURATION)") from None
        if not given:
            raise
        return given, None
    return given or config.database, config


def lifetime(args: argparse.Namespace) -> tuple[str, float, tzinfo]:
    """The database, how long the new token lives (seconds), and the time zone to show its expiry in."""
    from broadcaster.errors import InputError
    from broadcaster.timefmt import DurationError, parse_duration

    database, config = settings(args, need_config=args.expires is None)
    if args.expires is None:
        assert config is not None
        return database, config.token_expiry_s, config.timezone
    try:
        seconds = parse_duration(args.expires)
    except DurationError as exc:
        raise InputError(str(exc), where="--expires") from None
    if seconds < 60:
        raise InputError(f"{args.expires!r}: a token must live at least a minute", where="--expires")
    return database, seconds, config.timezone if config else UTC


def _show_token(line: str, token: Secret) -> None:
    console().print(line, markup=False)
    print(token.reveal(), flush=True)  # the last line: only the token, for scripts


async def cmd_add(args: argparse.Namespace) -> int:
    # The database alone: users and the audit log must be reachable even when a template is broken.
    from broadcaster.app.users import Users
    from broadcaster.cli.prompts import actor
    from broadcaster.store import opened
    from broadcaster.timefmt import iso_seconds

    database, seconds, tz = lifetime(args)
    async with opened(database) as store:
        users = Users(store.db)
        token = await users.add(args.name, args.role, expires_s=seconds, actor=actor())
        account = next(a for a in await users.all() if a.name == args.name)
    _show_token(f"user {args.name} ({args.role}) created; the token expires {iso_seconds(account.expires_at, tz)}. "
                "Store it now; it is not shown again:", token)
    return EXIT_OK


async def cmd_rotate(args: argparse.Namespace) -> int:
    from broadcaster.app.users import Users
    from broadcaster.cli.prompts import actor
    from broadcaster.store import opened
    from broadcaster.timefmt import iso_seconds

    database, seconds, tz = lifetime(args)
    async with opened(database) as store:
        users = Users(store.db)
        token = await users.rotate(args.name, expires_s=seconds, actor=actor())
        account = next(a for a in await users.all() if a.name == args.name)
    _show_token(f"new token for {args.name}: the old one no longer works (a running server: within 1 s). It expires "
                f"{iso_seconds(account.expires_at, tz)}. Store it now; it is not shown again:", token)
    return EXIT_OK


async def cmd_remove(args: argparse.Namespace) -> int:
    from broadcaster.app.users import Users
    from broadcaster.cli.prompts import actor
    from broadcaster.store import opened

    database, _ = settings(args, need_config=False)
    async with opened(database) as store:
        removed = await Users(store.db).remove(args.name, actor=actor())
    console().print(f"user {removed.name} ({removed.role}) removed: their token no longer works "
                    "(a running server: within 1 s)", markup=False)
    return EXIT_OK


async def cmd_role(args: argparse.Namespace) -> int:
    from broadcaster.app.users import Users
    from broadcaster.cli.prompts import actor
    from broadcaster.store import opened

    database, _ = settings(args, need_config=False)
    async with opened(database) as store:
        previous = await Users(store.db).set_role(args.name, args.role, actor=actor())
    console().print(f"user {args.name}: role {previous} -> {args.role} (a running server: within 1 s)", markup=False)
    return EXIT_OK


async def cmd_list(args: argparse.Namespace) -> int:
    import time

    from rich.table import Table

    from broadcaster.app.users import Users
    from broadcaster.store import opened
    from broadcaster.timefmt import iso_seconds

    database, config = settings(args, need_config=False)
    tz = config.timezone if config else UTC
    async with opened(database) as store:
        accounts = await Users(store.db).all()
    now = time.time()
    if args.json:
        print_json([{"name": a.name, "role": a.role, "created": iso_seconds(a.created_at, tz),
                     "expires": iso_seconds(a.expires_at, tz), "expired": a.expired(now)} for a in accounts])
        return EXIT_OK
    table = Table("name", "role", "created", "expires", title="API users (tokens are never shown)",
                  title_justify="left")
    for a in accounts:
        expires = iso_seconds(a.expires_at, tz)
        table.add_row(a.name, a.role, iso_seconds(a.created_at, tz),
                      f"[bold red]{expires} EXPIRED[/]" if a.expired(now) else expires)
    console().print(table)
    if not accounts:
        console().print("no users yet: `broadcaster users add NAME --role officer`")
    return EXIT_OK

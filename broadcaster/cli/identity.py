"""Who is at the terminal: a user of the ``users`` table, proven by their API token.

The token comes from the global ``--token-file PATH`` or, without it, from the
environment variable ``BROADCASTER_TOKEN``, and is verified exactly as the HTTP
service verifies a bearer token (:meth:`broadcaster.app.users.Users.verify`).
Commands that send to the public (``fire``/``update``/``cancel --live``,
``runbook run --live``, a live ``fire --at/--every``), ``confirm`` and
``templates approve`` act as that user, with that user's role, and refuse to run
without one. Other sending commands (dry-run, exercise) use a token when one is
given, and otherwise name the shell user (``cli:NAME``) in the audit log.

A refused token is audited as a ``login_failure``, a refused role as
``forbidden``, as the service does; neither ever records the token itself.
"""

from __future__ import annotations

import argparse
import getpass
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from broadcaster.errors import Forbidden, InputError

if TYPE_CHECKING:
    from broadcaster.app.context import App
    from broadcaster.app.users import User

TOKEN_ENV: Final = "BROADCASTER_TOKEN"


def how(role: str = "officer") -> str:
    """How to get an identity, for an error message."""
    return (f"set {TOKEN_ENV} to your API token, or pass --token-file PATH (a file only you can read). An "
            f"administrator with access to the database creates one with `broadcaster users add NAME --role {role}`, "
            "or issues you a new one with `broadcaster users rotate NAME`")


def add_token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", metavar="PATH",
                        help=f"a file holding your API token (else env {TOKEN_ENV}): who you are for live sends, "
                             "confirm and templates approve")


def _read(path: Path) -> str:
    path = path.expanduser()
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError(f"{path} can be read by other users: `chmod 600 {path}` first", where="--token-file")
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", where="--token-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({type(exc).__name__})", where="--token-file") from None


async def given_token(args: argparse.Namespace) -> tuple[str, str] | None:
    """``(token, where it came from)``, or None when none is given."""
    from broadcaster.clock import in_thread

    path = getattr(args, "token_file", None)
    if path:
        token = await in_thread(_read, Path(path))
        if not token:
            raise InputError(f"{path} is empty", where="--token-file")
        return token, "--token-file"
    token = os.environ.get(TOKEN_ENV, "").strip()
    return (token, TOKEN_ENV) if token else None


async def identify(args: argparse.Namespace, app: App, *, needed_for: str | None = None,
                   role: str = "officer") -> User | None:
    """The verified user at the terminal; None when no token is given and ``needed_for`` is None.

    ``needed_for`` names what needs an identity ("a live fire"): without a token
    that is refused, with an InputError saying how to get one (a user with
    ``role``). A token that is given is always verified, whatever the command.
    """
    from broadcaster.app.users import Users, token_id_of

    given = await given_token(args)
    if given is None:
        if needed_for is None:
            return None
        raise InputError(f"{needed_for} acts as you, and no API token says who you are: {how(role)}",
                         where=TOKEN_ENV)
    token, where = given
    user, reason = await Users(app.store.db).verify(token)
    if user is None:
        # Never the token itself: only why it failed, its public id, and from where.
        await app.audit("anonymous", "login_failure", {"reason": reason, "token_id": token_id_of(token),
                                                       "face": "cli", "command": command_of(args),
                                                       "os_user": getpass.getuser()})
        raise InputError(f"the token was refused ({reason}). {how(role)}", where=where)
    return user


async def require_identity(args: argparse.Namespace, app: App, needed_for: str, role: str = "officer") -> User:
    user = await identify(args, app, needed_for=needed_for, role=role)
    assert user is not None  # identify raises when a needed identity is missing
    return user


async def permitted(app: App, user: User, check: Callable[[], Awaitable[None] | None], /, **detail: Any) -> None:
    """Run a role check (:mod:`broadcaster.app.users`); a refusal is audited as ``forbidden``, then raised."""
    try:
        outcome = check()
        if outcome is not None:
            await outcome
    except Forbidden:
        await app.audit(user.name, "forbidden", {**detail, "role": user.role, "face": "cli"})
        raise


def command_of(args: argparse.Namespace) -> str:
    action = getattr(args, "action", None)
    return f"{args.command} {action}" if action else str(args.command)


def actor_of(user: User | None) -> str:
    """Who the audit log names: the verified user, else the shell user (commands that need no identity)."""
    from broadcaster.cli.prompts import actor

    return user.name if user is not None else actor()

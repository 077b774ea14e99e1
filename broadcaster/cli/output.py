"""Shared console helpers: rich for people, orjson for scripts (both imported on first use)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

MODE_STYLE = {
    "dry-run": ("DRY-RUN · محاكاة — لا يُرسل شيء · nothing leaves this machine", "bold black on cyan"),
    "exercise": ("EXERCISE · تمرين · exercise channels only, every text marked", "bold black on yellow"),
    "live": ("LIVE · بث حقيقي · real alerts to the public", "bold white on red"),
}


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def problem(line: str, style: str = "red") -> None:
    """One problem line on stderr; never parsed as markup (it may hold [tables])."""
    err_console().print(line, style=style, markup=False)


def banner(mode: str, out: Console | None = None) -> None:
    from broadcaster.cli.display import shown

    text, style = MODE_STYLE[mode]
    out = out or console()
    out.print(f" {shown(text, out)} ", style=style, markup=False)


def print_json(obj: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


def add_var_options(parser: Any) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                       help="a variable value; NAME.ar=/NAME.en= for a text variable's two languages")
    group.add_argument("--use-examples", action="store_true", help="fill every variable from the template's examples")


def add_mode_options(parser: Any) -> None:
    """``--dry-run | --exercise | --live`` (one required), ``--yes`` and ``--json``."""
    modes = parser.add_mutually_exclusive_group(required=True)
    modes.add_argument("--dry-run", dest="mode", action="store_const", const="dry-run",
                       help="render, rate-limit and log everything; no network connection at all")
    modes.add_argument("--exercise", dest="mode", action="store_const", const="exercise",
                       help="real sends, only to exercise = true channels, every text marked")
    modes.add_argument("--live", dest="mode", action="store_const", const="live", help="real alerts to the public")
    parser.add_argument("--yes", action="store_true", help="skip the typed confirmation of a live fire")
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    # A dry-run of this command runs on a virtual clock, inside the network guard (see cli.run).
    parser.set_defaults(virtual=True)

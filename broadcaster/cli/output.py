"""Shared console helpers: rich for people, orjson for scripts."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

MODE_STYLE = {
    "dry-run": ("DRY-RUN · تجربة محلية · nothing leaves this machine", "bold black on cyan"),
    "exercise": ("EXERCISE · تمرين · exercise channels only, every text marked", "bold black on yellow"),
    "live": ("LIVE · بث حقيقي · real alerts to the public", "bold white on red"),
}


def console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def problem(line: str, style: str = "red") -> None:
    """One problem line on stderr; never parsed as markup (it may hold [tables])."""
    err_console().print(line, style=style, markup=False)


def banner(mode: str) -> None:
    text, style = MODE_STYLE[mode]
    console().print(f" {text} ", style=style)


def print_json(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


def add_var_options(parser: Any) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                       help="a variable value; NAME.ar=/NAME.en= for a text variable's two languages")
    group.add_argument("--use-examples", action="store_true", help="fill every variable from the template's examples")

"""Reading the files people give us (channels.toml, templates, runbooks, recipient lists), with errors they can act on.

Python's own errors say ``[Errno 21] Is a directory`` or ``'utf-8' codec can't
decode byte 0xe9 in position 67``; an officer needs to hear that the path is a
folder, or that line 3 is not UTF-8 (a spreadsheet saved the list as Latin-1)
and how to save it. Each caller turns :class:`FileProblem` into its own input
error (ConfigError, TemplateError, ...), naming the file and the key that led to it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Final

_BOM: Final = b"\xef\xbb\xbf"


class FileProblem(ValueError):
    """A file that cannot be read as UTF-8 text; the message says why and what to do."""


def check_readable(path: Path, what: str = "file") -> None:
    """Raise FileProblem unless ``path`` is a regular file (not a folder, a pipe or a device) this process can read.

    A named pipe or a device would block a read forever, so they are refused before anything opens them.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileProblem(f"{what} not found") from None
    except OSError as exc:
        raise FileProblem(f"{what} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise FileProblem(f"{what} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise FileProblem(f"{what} is not a regular file (a pipe, socket or device cannot be read safely)")
    if not os.access(path, os.R_OK):
        raise FileProblem(f"{what} cannot be read: permission denied")


def open_text(path: Path, what: str = "file", *, newline: str | None = None) -> IO[str]:
    """``path`` opened as UTF-8 text (a byte-order mark is skipped); FileProblem when that cannot be done."""
    check_readable(path, what)
    try:
        return path.open(encoding="utf-8-sig", newline=newline)
    except OSError as exc:
        raise FileProblem(f"{what} cannot be read: {exc.strerror or exc}") from None


def read_text(path: Path, what: str = "file") -> str:
    """The whole of a small UTF-8 text file; FileProblem naming the line and byte that is not UTF-8."""
    with open_text(path, what) as handle:
        try:
            return handle.read()
        except UnicodeDecodeError:
            raise FileProblem(not_utf8(path, what)) from None
        except OSError as exc:
            raise FileProblem(f"{what} cannot be read: {exc.strerror or exc}") from None


def not_utf8(path: Path, what: str = "file") -> str:
    """Where ``path`` first stops being UTF-8, as a message: the line, the column (in bytes, from 1) and the byte."""
    advice = f"the {what} must be UTF-8 text: save it as UTF-8 (in a spreadsheet: CSV UTF-8)"
    try:
        with path.open("rb") as raw:
            # A newline byte never occurs inside a UTF-8 sequence, so each line can be checked alone.
            for number, line in enumerate(raw, start=1):
                body = line[len(_BOM):] if number == 1 and line.startswith(_BOM) else line
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return f"line {number}, column {exc.start + 1}: byte 0x{body[exc.start]:02X} is not UTF-8; {advice}"
    except OSError:
        pass
    return f"not UTF-8; {advice}"

"""Approve a template: bind the approver's name to exactly the content they reviewed.

The approver reviews a template and its sha256 (``templates show``, ``GET
/api/templates/{id}``: the file's content and the gazetteer names it renders).
:func:`approve` then reads the file **once**, hashes that text, compares the
hash to the one the approver reviewed, and writes the ``[approval]`` table into
that same text: a temporary file in the folder, then ``os.replace``. So:

- a file switched underneath before the read is refused (the hash differs:
  :class:`~broadcaster.errors.Conflict`, HTTP 409);
- a file switched after the read is never approved in its new form: what is
  written is the text that was hashed, and only if the file still holds the
  bytes that were read just before the replace (a Conflict otherwise, so a
  concurrent edit is not overwritten either).

The rest of the file, comments included, is kept byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from broadcaster.errors import Conflict, TemplateError
from broadcaster.templates.catalogue import Template, parse_template
from broadcaster.templates.gazetteer import Gazetteer

_HEADER = re.compile(r"(?m)^\[approval\][ \t]*(?:#.*)?$")  # the header may carry a comment


@dataclass(frozen=True)
class Reviewed:
    """A template file as read once: its bytes, and the template they parse to."""

    path: Path
    raw: bytes
    template: Template


def read_for_review(path: Path, kinds: Collection[str] | None, gazetteer: Gazetteer) -> Reviewed:
    """Read ``path`` once and parse it; every later step works on these bytes, never on the file again."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TemplateError("file not found", where=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TemplateError("not UTF-8 text", where=str(path)) from None
    return Reviewed(path, raw, parse_template(path, kinds, gazetteer, source=text))


def record(reviewed: Reviewed, *, sha256: str, by: str, when: datetime, gazetteer: Gazetteer) -> str:
    """Write the approval of ``reviewed`` if ``sha256`` is its hash; returns it. See the module docstring."""
    path, template = reviewed.path, reviewed.template
    if not by.strip():
        raise TemplateError("an approval needs the approver's name (--by)", where=str(path))
    if sha256 != template.content_hash:
        raise Conflict(f"template {template.id} changed since you reviewed it (you reviewed sha256 "
                       f"{sha256 or '-'}, it is now {template.content_hash}); review it again")
    text = _HEADER.split(reviewed.raw.decode("utf-8"), maxsplit=1)[0].rstrip("\r\n")
    by_toml = orjson.dumps(by.strip()).decode()
    text += (f'\n\n[approval]\nby = {by_toml}\nat = "{when.isoformat(timespec="seconds")}"\n'
             f'sha256 = "{template.content_hash}"\ngazetteer_sha256 = "{template.words_hash}"\n')
    # The rewrite must not change the approved content (e.g. tables after [approval]).
    rewritten = parse_template(path, None, gazetteer, source=text)
    if rewritten.content_hash != template.content_hash:
        raise TemplateError("[approval] must be the last table in the file", where=str(path))
    _replace_if_unchanged(path, reviewed.raw, text)
    return template.content_hash


def approve(path: Path, by: str, when: datetime, *, reviewed: str, gazetteer: Gazetteer,
            kinds: Collection[str] | None = None) -> str:
    """Approve the content of ``path`` if its sha256 is ``reviewed``; returns it (read once, written atomically)."""
    return record(read_for_review(path, kinds, gazetteer), sha256=reviewed, by=by, when=when, gazetteer=gazetteer)


def _replace_if_unchanged(path: Path, expected: bytes, text: str) -> None:
    """Put ``text`` in place of ``path`` (temp file, fsync, os.replace) if the file still holds ``expected``."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".approving")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.chmod(temp, stat.S_IMODE(path.stat().st_mode))
            current = path.read_bytes()
        except FileNotFoundError:
            raise TemplateError("file not found", where=str(path)) from None
        if current != expected:
            raise Conflict(f"{path.name} changed while it was being approved; nothing was written. Review it again",
                           where=str(path))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # the rename itself made durable, where the platform allows
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

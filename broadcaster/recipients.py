"""Stream SMS recipients from a CSV file (header ``phone,language,area``).

Rows are yielded one at a time, so memory stays flat whatever the list size.
Every phone number is checked as E.164 with ``phonenumbers``; a bad row raises
a ConfigError naming the file and line, which aborts the outbox transaction:
nothing is half-sent.

A fire reads a list twice (to count the audience for the preview, then to write
the outbox). ``phonenumbers`` costs ~30 µs a number, so a file that has fully
passed is remembered by size and modification time; a second read of the same,
unchanged file checks only the E.164 shape.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from broadcaster.errors import ConfigError

HEADER = ("phone", "language", "area")
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{6,14}")
# resolved path -> (size, mtime_ns) of a file whose every number passed phonenumbers
_checked: dict[Path, tuple[int, int]] = {}


@dataclass(frozen=True, slots=True)
class Recipient:
    phone: str
    language: str
    area: str
    line: int


def check_phone(phone: str) -> bool:
    if not phone.startswith("+") or not phone[1:].isdigit():
        return False
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.E164
    ) == phone


def iter_recipients(path: Path, *, known_areas: set[str] | None = None, where: str = "") -> Iterator[Recipient]:
    """Yield checked recipients; raise ConfigError at the first bad row."""
    label = f"{where}: {path}" if where else str(path)
    try:
        # utf-8-sig: spreadsheet exports start with a byte-order mark, which would spoil the header.
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ConfigError("recipient list not found", where=label) from None
    stat = path.stat()
    fingerprint = (stat.st_size, stat.st_mtime_ns)
    key = path.resolve()
    trusted = _checked.get(key) == fingerprint
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) != HEADER:
            raise ConfigError(f"line 1: header must be {','.join(HEADER)}", where=label)
        for line, row in enumerate(reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != 3:
                raise ConfigError(f"line {line}: expected 3 fields, found {len(row)}", where=label)
            phone, language, area = (field.strip() for field in row)
            valid = _E164_SHAPE.fullmatch(phone) is not None if trusted else check_phone(phone)
            if not valid:
                raise ConfigError(f"line {line}: {phone!r} is not a valid E.164 phone number", where=label)
            if language not in ("ar", "en"):
                raise ConfigError(f"line {line}: language {language!r} must be ar or en", where=label)
            if known_areas is not None and area not in known_areas:
                raise ConfigError(f"line {line}: area {area!r} is not in the gazetteer", where=label)
            yield Recipient(phone, language, area, line)
    _checked[key] = fingerprint

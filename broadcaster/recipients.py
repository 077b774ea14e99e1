"""Stream recipients from a CSV file: phones (header ``phone,language,area``) or emails (``email,language,area``).

Rows are yielded one at a time, so memory stays flat whatever the list size.
Every phone number is checked as E.164 with ``phonenumbers``, every email
address with ``email-validator`` (syntax only: nothing is looked up in the DNS);
a bad row raises a ConfigError naming the file and line, which aborts the outbox
transaction: nothing is half-sent. An email address is kept as written with its
domain in lower case, so one address written twice is one recipient (the local
part stays as written: RFC 5321 lets a server tell its cases apart).

A fire reads a list twice: to count the audience for the preview, then to write
the outbox. ``phonenumbers`` costs ~30 µs a number (six seconds for 200,000), so
:func:`index_list` validates a file once and keeps, by path, size and
modification time, its counts per area and language: the next preview of the
same, unchanged file is a lookup, and the next read checks only the E.164 shape.
Both are CPU work: callers on an event loop run them on a worker thread
(``clock.in_thread``).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from threading import Lock
from typing import Final

import phonenumbers

from broadcaster.errors import ConfigError
from broadcaster.text.files import FileProblem, check_readable, not_utf8, open_text


class ListFormat(StrEnum):
    """What a list's first column holds; its value is that column's header."""

    PHONE = "phone"
    EMAIL = "email"


HEADER = ("phone", "language", "area")
READ_BLOCK: Final = 1 << 20
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{6,14}")
# The shape of an address email-validator accepted (ASCII, dot-atom local part, a host name).
_EMAIL_SHAPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# (resolved path, format) -> (size, mtime_ns) of a file whose every address passed the full check
_checked: dict[tuple[Path, ListFormat], tuple[int, int]] = {}
_indexes: dict[tuple[Path, ListFormat, frozenset[str] | None], tuple[tuple[int, int], ListIndex]] = {}
_index_lock = Lock()


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # an E.164 phone, or an email address with its domain in lower case
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


def email_problem(address: str) -> str | None:
    """Why ``address`` cannot be sent to (in plain words), or None when it can."""
    from email_validator import EmailNotValidError, validate_email

    if not address.isascii():
        try:  # an international domain name has an ASCII form the list can hold instead
            ascii_form = validate_email(address, check_deliverability=False).ascii_email
        except EmailNotValidError:
            ascii_form = None
        hint = f"write it as {ascii_form!r}" if ascii_form else "the address must be ASCII"
        return f"this sender does not use SMTPUTF8; {hint}"
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def canonical_email(address: str) -> str:
    """``address`` with its domain in lower case (domains are case-insensitive; local parts may not be)."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def iter_recipients(path: Path, *, known_areas: set[str] | None = None, where: str = "",
                    list_format: ListFormat = ListFormat.PHONE) -> Iterator[Recipient]:
    """Yield checked recipients; raise ConfigError at the first bad row (or a file that is no UTF-8 CSV)."""
    label = f"{where}: {path}" if where else str(path)
    try:
        # utf-8-sig: spreadsheet exports start with a byte-order mark, which would spoil the header.
        handle = open_text(path, "recipient list", newline="")
        stat = path.stat()
    except (FileProblem, OSError) as exc:
        raise ConfigError(str(exc) if isinstance(exc, FileProblem) else f"recipient list cannot be read: {exc}",
                          where=label) from None
    fingerprint = (stat.st_size, stat.st_mtime_ns)
    key = (path.resolve(), list_format)
    trusted = _checked.get(key) == fingerprint
    with handle:
        # Decode in 1 MiB chunks, not 8 KiB: read on a worker thread, a list read in small chunks hands
        # the GIL back and forth so often that the event loop waited over a second for it (bench.gil).
        handle._CHUNK_SIZE = READ_BLOCK  # type: ignore[attr-defined]  # CPython's TextIOWrapper chunk
        reader = csv.reader(handle)
        try:
            yield from _rows(reader, known_areas=known_areas, trusted=trusted, label=label, list_format=list_format)
        except UnicodeDecodeError:
            raise ConfigError(not_utf8(path, "recipient list"), where=label) from None
        except csv.Error as exc:  # a NUL byte, a field over the csv module's size limit
            raise ConfigError(f"line {reader.line_num}: not a usable CSV row: {exc}", where=label) from None
        except OSError as exc:
            raise ConfigError(f"recipient list cannot be read: {exc.strerror or exc}", where=label) from None
    _checked[key] = fingerprint


def _rows(reader: Iterator[list[str]], *, known_areas: set[str] | None, trusted: bool, label: str,
          list_format: ListFormat) -> Iterator[Recipient]:
    expected = (str(list_format), "language", "area")
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != expected:
        raise ConfigError(f"line 1: header must be {','.join(expected)}", where=label)
    for line, row in enumerate(reader, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 3:
            raise ConfigError(f"line {line}: expected 3 fields, found {len(row)}", where=label)
        address, language, area = (field.strip() for field in row)
        if list_format is ListFormat.PHONE:
            valid = _E164_SHAPE.fullmatch(address) is not None if trusted else check_phone(address)
            if not valid:
                raise ConfigError(f"line {line}: {address!r} is not a valid E.164 phone number", where=label)
        else:
            problem = (None if _EMAIL_SHAPE.fullmatch(address) else "not an address") if trusted else \
                email_problem(address)
            if problem is not None:
                raise ConfigError(f"line {line}: {address!r} is not a usable email address: {problem}",
                                  where=label)
            address = canonical_email(address)
        if language not in ("ar", "en"):
            raise ConfigError(f"line {line}: language {language!r} must be ar or en", where=label)
        if known_areas is not None and area not in known_areas:
            raise ConfigError(f"line {line}: area {area!r} is not in the gazetteer", where=label)
        yield Recipient(address, language, area, line)


@dataclass(frozen=True, slots=True)
class ListIndex:
    """What a validated recipient list holds: how many recipients per (area, language)."""

    counts: Mapping[tuple[str, str], int]

    def audience(self, areas: set[str] | None) -> Counter[str]:
        """Recipients per language in ``areas`` (every area when None or empty)."""
        found: Counter[str] = Counter()
        for (area, language), n in self.counts.items():
            if not areas or area in areas:
                found[language] += n
        return found


def index_list(path: Path, *, known_areas: set[str] | None = None, where: str = "",
               list_format: ListFormat = ListFormat.PHONE) -> ListIndex:
    """Validate the whole list once and count it; an unchanged file (same size and mtime) is not read again."""
    key = (path.resolve(), list_format, frozenset(known_areas) if known_areas is not None else None)
    try:
        check_readable(path, "recipient list")
        stat = path.stat()
    except (FileProblem, OSError) as exc:
        raise ConfigError(str(exc), where=f"{where}: {path}" if where else str(path)) from None
    fingerprint = (stat.st_size, stat.st_mtime_ns)
    with _index_lock:
        cached = _indexes.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    counts: Counter[tuple[str, str]] = Counter()
    for r in iter_recipients(path, known_areas=known_areas, where=where, list_format=list_format):
        counts[(r.area, r.language)] += 1
    index = ListIndex(dict(counts))
    with _index_lock:
        _indexes[key] = (fingerprint, index)
    return index

"""Stream SMS recipients from a CSV file (header ``phone,language,area``).

Rows are yielded one at a time, so memory stays flat whatever the list size.
Every phone number is checked as E.164 with ``phonenumbers``; a bad row raises
a ConfigError naming the file and line, which aborts the outbox transaction:
nothing is half-sent.

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
from pathlib import Path
from threading import Lock
from typing import Final

import phonenumbers

from broadcaster.errors import ConfigError
from broadcaster.text.files import FileProblem, check_readable, not_utf8, open_text

HEADER = ("phone", "language", "area")
READ_BLOCK: Final = 1 << 20
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{6,14}")
# resolved path -> (size, mtime_ns) of a file whose every number passed phonenumbers
_checked: dict[Path, tuple[int, int]] = {}
_indexes: dict[tuple[Path, frozenset[str] | None], tuple[tuple[int, int], ListIndex]] = {}
_index_lock = Lock()


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
    key = path.resolve()
    trusted = _checked.get(key) == fingerprint
    with handle:
        # Decode in 1 MiB chunks, not 8 KiB: read on a worker thread, a list read in small chunks hands
        # the GIL back and forth so often that the event loop waited over a second for it (bench.gil).
        handle._CHUNK_SIZE = READ_BLOCK  # type: ignore[attr-defined]  # CPython's TextIOWrapper chunk
        reader = csv.reader(handle)
        try:
            yield from _rows(reader, known_areas=known_areas, trusted=trusted, label=label)
        except UnicodeDecodeError:
            raise ConfigError(not_utf8(path, "recipient list"), where=label) from None
        except csv.Error as exc:  # a NUL byte, a field over the csv module's size limit
            raise ConfigError(f"line {reader.line_num}: not a usable CSV row: {exc}", where=label) from None
        except OSError as exc:
            raise ConfigError(f"recipient list cannot be read: {exc.strerror or exc}", where=label) from None
    _checked[key] = fingerprint


def _rows(reader: Iterator[list[str]], *, known_areas: set[str] | None, trusted: bool,
          label: str) -> Iterator[Recipient]:
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


@dataclass(frozen=True, slots=True)
class ListIndex:
    """What a validated recipient list holds: how many phones per (area, language)."""

    counts: Mapping[tuple[str, str], int]

    def audience(self, areas: set[str] | None) -> Counter[str]:
        """Recipients per language in ``areas`` (every area when None or empty)."""
        found: Counter[str] = Counter()
        for (area, language), n in self.counts.items():
            if not areas or area in areas:
                found[language] += n
        return found


def index_list(path: Path, *, known_areas: set[str] | None = None, where: str = "") -> ListIndex:
    """Validate the whole list once and count it; an unchanged file (same size and mtime) is not read again."""
    key = (path.resolve(), frozenset(known_areas) if known_areas is not None else None)
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
    for r in iter_recipients(path, known_areas=known_areas, where=where):
        counts[(r.area, r.language)] += 1
    index = ListIndex(dict(counts))
    with _index_lock:
        _indexes[key] = (fingerprint, index)
    return index

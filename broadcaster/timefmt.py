"""Timestamps: stored as unix seconds, shown as ISO 8601 with an explicit offset. Durations as people write them.

Every date and time a person or a file gives is read here (:func:`parse_moment`)
and must fall inside :data:`EARLIEST` .. :data:`LATEST` (UTC). Python's own range
(years 1 to 9999) is not enough: ``0001-01-01T00:00:00+04:00`` parses, then
overflows the moment it is shown in another zone, stored as a timestamp or
shifted by a duration. An alert, a schedule or a runbook time outside this range
is a typing mistake, and is refused with what to write instead.

Durations: ``90s``, ``30m``, ``2h``, ``1d``, combinations such as ``1h30m``, or
ISO 8601 (``PT2H``, ``P1D``, ``P1DT6H``). ASCII digits only, never negative, at
most ten years.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)  # the first moment no longer allowed
RANGE_TEXT: Final = "between the years 2000 and 2099 (UTC)"
EXAMPLE: Final = "2026-11-23T22:00:00+04:00"

# ASCII digits only, a few of them: "²h" or a 5,000-digit count is a mistake, not a duration.
_SHORT: Final = re.compile(r"^(?:(\d{1,6})d)?(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,11}(?:\.\d{1,6})?)s)?$", re.ASCII)
_ISO: Final = re.compile(
    r"^P(?:(\d{1,5})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,11}(?:\.\d{1,6})?)S)?)?$", re.ASCII)
MAX_DURATION_S: Final = 3653 * 86400.0  # ten years: anything longer is a typing mistake (and would overflow)


def iso(ts: float, tz: tzinfo = UTC) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


def iso_seconds(ts: float, tz: tzinfo = UTC) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


class MomentError(ValueError):
    """A date and time that cannot be used; the message names the value and says what to write instead."""


class NoOffset(MomentError):
    """A date and time written without its UTC offset."""


def parse_moment(text: str) -> datetime:
    """ISO 8601 with an explicit UTC offset, inside the allowed range; raise MomentError otherwise."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MomentError(f"{text!r} is not an ISO 8601 date and time (e.g. {EXAMPLE})") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NoOffset(f"{text!r} has no UTC offset; write it with one, "
                          f"e.g. {moment.replace(tzinfo=None).isoformat()}+04:00")
    return in_range(moment, text)


def in_range(moment: datetime, text: object = None) -> datetime:
    """``moment`` (with an offset) when it lies inside the allowed range; raise MomentError otherwise."""
    try:
        inside = EARLIEST <= moment.astimezone(UTC) < LATEST
    except (OverflowError, ValueError):
        inside = False
    if not inside:
        raise out_of_range(text if text is not None else moment.isoformat())
    return moment


def out_of_range(text: object) -> MomentError:
    return MomentError(f"{text!r} is outside the dates this system handles: write a date {RANGE_TEXT}")


def shifted(moment: datetime, seconds: float, text: object) -> datetime:
    """``moment`` moved by ``seconds``, inside the allowed range; raise MomentError naming ``text`` otherwise."""
    try:
        moved = moment + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise out_of_range(text) from None
    return in_range(moved, text)


def moment_of(ts: float, tz: tzinfo, text: object) -> datetime:
    """Unix seconds as a datetime in ``tz``, inside the allowed range; raise MomentError naming ``text`` otherwise."""
    try:
        moment = datetime.fromtimestamp(ts, tz)
    except (OverflowError, OSError, ValueError):
        raise out_of_range(text) from None
    return in_range(moment, text)


class DurationError(ValueError):
    """A duration or time that cannot be read; the message says what to write instead."""


def parse_duration(text: object) -> float:
    """Seconds in ``text`` (``30m``, ``2h``, ``1h30m``, ``PT2H``); raise DurationError otherwise."""
    if not isinstance(text, str):
        raise DurationError(f"{text!r}: write a duration as a string such as \"30m\", \"2h\" or \"PT2H\"")
    value = text.strip().replace(" ", "")
    if value.startswith("-"):
        raise DurationError(f"{text!r}: a duration cannot be negative")
    seconds: float | None = None
    short = _SHORT.match(value.lower())
    written = _ISO.match(value.upper())
    if value and short and any(short.groups()):
        d, h, m, s = short.groups()
        seconds = int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    elif len(value) > 1 and written and any(written.groups()):
        w, d, h, m, s = written.groups()
        seconds = (int(w or 0) * 7 + int(d or 0)) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    if seconds is None:
        raise DurationError(f"{text!r}: not a duration (write e.g. \"90s\", \"30m\", \"2h\", \"1d\", \"1h30m\" "
                            "or \"PT2H\")")
    if seconds > MAX_DURATION_S:
        raise DurationError(f"{text!r}: longer than ten years ({format_duration(MAX_DURATION_S)}), the longest "
                            "duration a runbook or schedule may use")
    return seconds


def format_duration(seconds: float) -> str:
    """``2h 30m``-style, for people."""
    total = round(seconds)
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return sign + (" ".join(parts) or "0s")

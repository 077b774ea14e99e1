"""Durations and times as runbooks write them.

Durations: ``90s``, ``30m``, ``2h``, ``1d``, combinations such as ``1h30m``, or
ISO 8601 (``PT2H``, ``P1D``, ``P1DT6H``). Never negative.

Datetimes: ISO 8601 with an explicit UTC offset (``2026-11-23T22:00:00+04:00``),
or, for runbook inputs, a time relative to the start of the run: ``now``,
``+2h`` / ``-15m`` (any duration) or ``+1d 22:00`` (22:00 local time, one day
after the start date, in the timezone of channels.toml). Relative values are
resolved once, when the run starts, and stored resolved.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from broadcaster.timefmt import MomentError, in_range, moment_of, parse_moment, shifted

# ASCII digits only, a few of them: "²h" or a 5,000-digit count is a mistake, not a duration.
_SHORT: Final = re.compile(r"^(?:(\d{1,6})d)?(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,11}(?:\.\d{1,6})?)s)?$", re.ASCII)
_ISO: Final = re.compile(
    r"^P(?:(\d{1,5})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,11}(?:\.\d{1,6})?)S)?)?$", re.ASCII)
_WALL: Final = re.compile(r"^\+(\d{1,6})d\s+(\d{1,2}):(\d{2})$", re.ASCII)
MAX_DURATION_S: Final = 3653 * 86400.0  # ten years: anything longer is a typing mistake (and would overflow)


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
    iso = _ISO.match(value.upper())
    if value and short and any(short.groups()):
        d, h, m, s = short.groups()
        seconds = int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    elif len(value) > 1 and iso and any(iso.groups()):
        w, d, h, m, s = iso.groups()
        seconds = (int(w or 0) * 7 + int(d or 0)) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    if seconds is not None:
        if seconds > MAX_DURATION_S:
            raise DurationError(f"{text!r}: longer than ten years ({format_duration(MAX_DURATION_S)}), the longest "
                                "duration a runbook or schedule may use")
        return seconds
    raise DurationError(f"{text!r}: not a duration (write e.g. \"90s\", \"30m\", \"2h\", \"1d\", \"1h30m\" "
                        "or \"PT2H\")")


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


def parse_datetime(text: object) -> datetime:
    """An ISO 8601 datetime with an explicit offset, inside the dates the system handles; DurationError otherwise."""
    try:
        if isinstance(text, datetime):
            if text.tzinfo is None or text.utcoffset() is None:
                raise DurationError(f"{text.isoformat()!r}: has no UTC offset; write it with one, e.g. +04:00")
            return in_range(text)
        if isinstance(text, str):
            return parse_moment(text)
    except MomentError as exc:
        raise DurationError(str(exc)) from None
    raise DurationError(f"{text!r}: write a date and time as a string, e.g. \"2026-11-23T22:00:00+04:00\"")


def is_relative(text: str) -> bool:
    value = text.strip()
    return value == "now" or value.startswith(("+", "-"))


def resolve_datetime(text: str, start: float, tz: ZoneInfo) -> datetime:
    """An absolute or start-relative datetime (see the module docstring), in ``tz``."""
    value = text.strip()
    try:
        origin = moment_of(start, tz, "now")
        if value == "now":
            return origin
        wall = _WALL.match(value)
        if wall:
            days, hour, minute = (int(g) for g in wall.groups())
            if hour > 23 or minute > 59:
                raise DurationError(f"{text!r}: {hour}:{minute:02d} is not a time of day")
            day = shifted(origin, days * 86400.0, text).date()
            return in_range(datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz), text)
        if value.startswith(("+", "-")):
            seconds = parse_duration(value[1:])
            return shifted(origin, seconds if value[0] == "+" else -seconds, text)
        return parse_datetime(value).astimezone(tz)
    except MomentError as exc:
        raise DurationError(str(exc)) from None

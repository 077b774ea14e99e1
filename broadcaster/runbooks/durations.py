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
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

_SHORT: Final = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_ISO: Final = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_WALL: Final = re.compile(r"^\+(\d+)d\s+(\d{1,2}):(\d{2})$")


class DurationError(ValueError):
    """A duration or time that cannot be read; the message says what to write instead."""


def parse_duration(text: object) -> float:
    """Seconds in ``text`` (``30m``, ``2h``, ``1h30m``, ``PT2H``); raise DurationError otherwise."""
    if not isinstance(text, str):
        raise DurationError(f"{text!r}: write a duration as a string such as \"30m\", \"2h\" or \"PT2H\"")
    value = text.strip().replace(" ", "")
    if value.startswith("-"):
        raise DurationError(f"{text!r}: a duration cannot be negative")
    short = _SHORT.match(value.lower())
    if value and short and any(short.groups()):
        d, h, m, s = short.groups()
        return int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    iso = _ISO.match(value.upper())
    if len(value) > 1 and iso and any(iso.groups()):
        w, d, h, m, s = iso.groups()
        return (int(w or 0) * 7 + int(d or 0)) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
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
    """An ISO 8601 datetime with an explicit offset; raise DurationError otherwise."""
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, str):
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise DurationError(
                f"{text!r}: not an ISO 8601 date and time (e.g. 2026-11-23T22:00:00+04:00)"
            ) from None
    else:
        raise DurationError(f"{text!r}: write a date and time as a string, e.g. \"2026-11-23T22:00:00+04:00\"")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DurationError(f"{text!r}: has no UTC offset; write it with one, e.g. +04:00")
    return moment


def is_relative(text: str) -> bool:
    value = text.strip()
    return value == "now" or value.startswith(("+", "-"))


def resolve_datetime(text: str, start: float, tz: ZoneInfo) -> datetime:
    """An absolute or start-relative datetime (see the module docstring), in ``tz``."""
    value = text.strip()
    origin = datetime.fromtimestamp(start, tz)
    if value == "now":
        return origin
    wall = _WALL.match(value)
    if wall:
        days, hour, minute = (int(g) for g in wall.groups())
        if hour > 23 or minute > 59:
            raise DurationError(f"{text!r}: {hour}:{minute:02d} is not a time of day")
        day = origin.date() + timedelta(days=days)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    if value.startswith(("+", "-")):
        seconds = parse_duration(value[1:])
        return origin + timedelta(seconds=seconds if value[0] == "+" else -seconds)
    return parse_datetime(value).astimezone(tz)

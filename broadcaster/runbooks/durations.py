"""Durations and times as runbooks write them.

Durations: ``90s``, ``30m``, ``2h``, ``1d``, combinations such as ``1h30m``, or
ISO 8601 (``PT2H``, ``P1D``, ``P1DT6H``). Never negative. (Their grammar is
:func:`broadcaster.timefmt.parse_duration`, shared with ``channels.toml``.)

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

from broadcaster.timefmt import (
    DurationError,
    MomentError,
    format_duration,
    in_range,
    moment_of,
    parse_duration,
    parse_moment,
    shifted,
)

__all__ = ["DurationError", "format_duration", "is_relative", "parse_datetime", "parse_duration",
           "resolve_datetime"]

_WALL: Final = re.compile(r"^\+(\d{1,6})d\s+(\d{1,2}):(\d{2})$", re.ASCII)


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

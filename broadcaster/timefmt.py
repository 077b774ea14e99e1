"""Timestamps: stored as unix seconds, shown as ISO 8601 with an explicit offset.

Every date and time a person or a file gives is read here (:func:`parse_moment`)
and must fall inside :data:`EARLIEST` .. :data:`LATEST` (UTC). Python's own range
(years 1 to 9999) is not enough: ``0001-01-01T00:00:00+04:00`` parses, then
overflows the moment it is shown in another zone, stored as a timestamp or
shifted by a duration. An alert, a schedule or a runbook time outside this range
is a typing mistake, and is refused with what to write instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)  # the first moment no longer allowed
RANGE_TEXT: Final = "between the years 2000 and 2099 (UTC)"
EXAMPLE: Final = "2026-11-23T22:00:00+04:00"


class MomentError(ValueError):
    """A date and time that cannot be used; the message names the value and says what to write instead."""


def iso(ts: float, tz: tzinfo = UTC) -> str:
    """ISO 8601 with an explicit ``+00:00`` offset (CAP forbids ``Z``), millisecond precision."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def iso_seconds(ts: float, tz: tzinfo = UTC) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def parse_moment(text: str) -> datetime:
    """ISO 8601 with an explicit UTC offset, inside the allowed range; raise MomentError otherwise."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MomentError(f"{text!r} is not an ISO 8601 date and time (e.g. {EXAMPLE})") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MomentError(f"{text!r} has no UTC offset; write it with one, "
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

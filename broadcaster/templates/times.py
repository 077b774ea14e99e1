"""Time rules: every datetime variable says when it may lie, relative to the moment of firing.

A template declares, for each datetime variable::

    when = "future"      # future | past | any
    within_hours = 720   # future: at most this far ahead; past: at most this long ago; any: either way
    after = "starts"     # optional: strictly later than that datetime variable

so a flood warning "until" a year ago, a closure that ends before it starts, or
an earthquake that "occurred" next month is refused before anything renders.

Examples of datetime variables are written relative to the moment they are used
(``now``, ``+6h``, ``-10m``, ``+1d 22:00`` = 22:00 local time tomorrow), so a
template's examples always fire; an absolute ISO 8601 example is allowed but
ages, and ``templates check`` then says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from broadcaster.errors import Refusal, VariableError

WHEN: Final = ("future", "past", "any")
MAX_WITHIN_HOURS: Final = 8784.0  # a leap year
_DURATION: Final = re.compile(r"^(?:([0-9]{1,3})d)?(?:([0-9]{1,4})h)?(?:([0-9]{1,5})m)?$")
_WALL: Final = re.compile(r"^\+([0-9]{1,3})d +([0-9]{1,2}):([0-9]{2})$")


@dataclass(frozen=True, slots=True)
class TimeRule:
    """Where one datetime variable may lie: relative to now, and after another variable."""

    when: str  # future | past | any
    within_hours: float
    after: str | None = None

    def describe(self) -> str:
        span = f"{self.within_hours:g} hours"
        rule = {"future": f"in the future, at most {span} ahead", "past": f"not in the future, at most {span} ago",
                "any": f"within {span} of now"}[self.when]
        return rule + (f", after {self.after!r}" if self.after else "")


def is_relative(text: str) -> bool:
    value = text.strip()
    return value == "now" or value.startswith(("+", "-"))


def relative_moment(text: str, now: float, tz: ZoneInfo) -> datetime:
    """``now``, ``+6h`` / ``-1d2h30m``, or ``+1d 22:00`` (local time in ``tz``), from ``now``; ValueError otherwise."""
    value = text.strip()
    origin = datetime.fromtimestamp(now, tz).replace(second=0, microsecond=0)
    if value == "now":
        return origin
    wall = _WALL.match(value)
    if wall:
        days, hour, minute = (int(g) for g in wall.groups())
        if hour > 23 or minute > 59:
            raise ValueError(f"{text!r}: {hour}:{minute:02d} is not a time of day")
        day = origin.date() + timedelta(days=days)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    duration = _DURATION.match(value[1:].replace(" ", "")) if value[:1] in "+-" else None
    if duration is None or not any(duration.groups()):
        raise ValueError(f"{text!r}: write a relative time as now, +6h, -10m, +1d2h or +1d 22:00")
    d, h, m = (int(g or 0) for g in duration.groups())
    delta = timedelta(days=d, hours=h, minutes=m)
    return origin + delta if value[0] == "+" else origin - delta


def check_times(rules: Mapping[str, TimeRule], moments: Mapping[str, datetime], now: float, tz: ZoneInfo) -> None:
    """Raise a VariableError naming the first datetime variable that breaks its rule at ``now``."""
    current = datetime.fromtimestamp(now, tz)
    for name, moment in moments.items():
        rule = rules.get(name)
        if rule is None:
            continue
        shown = moment.astimezone(tz).isoformat(timespec="minutes")
        span = timedelta(hours=rule.within_hours)
        was = f"{name!r}: {shown} is"
        if rule.when == "future" and moment <= current:
            raise VariableError(f"variable {was} not in the future (now is {_at(current)}); it must be later",
                                variable=name).because(Refusal.TIME_RULE, rule="future")
        if rule.when == "past" and moment > current:
            raise VariableError(f"variable {was} in the future (now is {_at(current)}); it must be now or earlier",
                                variable=name).because(Refusal.TIME_RULE, rule="past")
        if moment > current + span:
            raise VariableError(f"variable {was} more than {rule.within_hours:g} hours ahead (now is "
                                f"{_at(current)}); check the date", variable=name).because(
                                    Refusal.TIME_RULE, rule="ahead", hours=rule.within_hours)
        if moment < current - span:
            raise VariableError(f"variable {was} more than {rule.within_hours:g} hours ago (now is "
                                f"{_at(current)}); check the date", variable=name).because(
                                    Refusal.TIME_RULE, rule="ago", hours=rule.within_hours)
        if rule.after is not None and rule.after in moments and moment <= moments[rule.after]:
            other = moments[rule.after].astimezone(tz).isoformat(timespec="minutes")
            raise VariableError(f"variable {was} not after {rule.after!r} ({other}); it must come later",
                                variable=name).because(Refusal.TIME_RULE, rule="after", after=rule.after)


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")

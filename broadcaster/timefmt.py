"""Timestamps: stored as unix seconds, shown as ISO 8601 with an explicit offset. Durations as people write them.

Durations: ``90s``, ``30m``, ``2h``, ``1d``, combinations such as ``1h30m``, or
ISO 8601 (``PT2H``, ``P1D``, ``P1DT6H``). Never negative.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Final

_SHORT: Final = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_ISO: Final = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def iso(ts: float, tz: tzinfo = UTC) -> str:
    """ISO 8601 with an explicit ``+00:00`` offset (CAP forbids ``Z``), millisecond precision."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def iso_seconds(ts: float, tz: tzinfo = UTC) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


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
    written = _ISO.match(value.upper())
    if len(value) > 1 and written and any(written.groups()):
        w, d, h, m, s = written.groups()
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

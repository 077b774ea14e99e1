"""Timestamps: stored as unix seconds, shown as ISO 8601 with an explicit offset."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def iso(ts: float, tz: tzinfo = UTC) -> str:
    """ISO 8601 with an explicit ``+00:00`` offset (CAP forbids ``Z``), millisecond precision."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def iso_seconds(ts: float, tz: tzinfo = UTC) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")

"""Failed authentications, counted: one audit row per source per minute, never one row per 401.

A refused request only bumps a counter in memory (:meth:`FailedLogins.add` is
synchronous: no database write, no lock, nothing a flood of bad tokens can queue
up behind). Once a minute has ended, :meth:`FailedLogins.flush` writes one
``login_failure`` row for each source seen in it: how many requests, why they
failed, which public token ids and which paths they tried, the first and the last.
``broadcaster serve`` flushes every few seconds and once more as it stops, so the
minute still under way is written too (a server started again within that
minute may then write a second row for it).

Everything runs on the server's one event loop, so concurrent requests cannot
lose an increment; a flush takes the ended minutes out of the table before its
first ``await``, so requests arriving meanwhile count towards the minute they
belong to. A row the database refuses goes back into the table for the next flush.

Memory stays bounded under any flood: at most :data:`MAX_SOURCES` sources a
minute are told apart (the rest share one ``other sources`` row), and each row
keeps at most :data:`MAX_KEPT` token ids and paths.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from broadcaster.clock import Clock
from broadcaster.errors import StoreError
from broadcaster.timefmt import iso

log = logging.getLogger("broadcaster.service")

MINUTE: Final = 60
MAX_SOURCES: Final = 1_000  # distinct sources told apart in one minute
MAX_KEPT: Final = 10  # distinct token ids and paths kept in one row
OTHER_SOURCES: Final = "other sources"
FLUSH_EVERY_S: Final = 5.0

Record = Callable[[str, str, dict[str, Any]], Awaitable[None]]  # (actor, action, detail): one audit row


@dataclass
class _Tally:
    first: float
    last: float
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    token_ids: list[str] = field(default_factory=list)
    paths: Counter[str] = field(default_factory=Counter)
    more_token_ids: int = 0

    def add(self, at: float, reason: str, token_id: str | None, path: str) -> None:
        self.count += 1
        self.first, self.last = min(self.first, at), max(self.last, at)
        self.reasons[reason] += 1
        if token_id is not None and token_id not in self.token_ids:
            if len(self.token_ids) < MAX_KEPT:
                self.token_ids.append(token_id)
            else:
                self.more_token_ids += 1
        self.paths[path if path in self.paths or len(self.paths) < MAX_KEPT else "(other paths)"] += 1

    def merge(self, other: _Tally) -> None:
        self.count += other.count
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.reasons.update(other.reasons)
        self.paths.update(other.paths)
        for token_id in other.token_ids:
            if token_id not in self.token_ids:
                self.token_ids.append(token_id)
        self.more_token_ids += other.more_token_ids

    def detail(self, source: str, minute: int) -> dict[str, Any]:
        found: dict[str, Any] = {
            "source": source, "minute": iso(minute * MINUTE), "count": self.count, "first": iso(self.first),
            "last": iso(self.last), "reasons": dict(self.reasons), "token_ids": self.token_ids,
            "paths": dict(self.paths),
        }
        if self.more_token_ids:
            found["more_token_ids"] = self.more_token_ids
        return found


class FailedLogins:
    """Counts refused requests per ``(minute, source)`` and writes each count once, as one audit row."""

    def __init__(self, record: Record, clock: Clock) -> None:
        self._record = record
        self._clock = clock
        self._tallies: dict[tuple[int, str], _Tally] = {}
        self._sources: Counter[int] = Counter()  # distinct sources told apart, per minute

    def add(self, source: str, reason: str, *, token_id: str | None, method: str, path: str) -> None:
        """One refused request (synchronous: it never waits for the database)."""
        now = self._clock.now()
        minute = int(now // MINUTE)
        key = (minute, source or "unknown")
        tally = self._tallies.get(key)
        if tally is None:
            if self._sources[minute] >= MAX_SOURCES:
                key = (minute, OTHER_SOURCES)
                tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally(now, now)
                self._sources[minute] += 1
        tally.add(now, reason, token_id, f"{method} {path}")

    @property
    def pending(self) -> int:
        """Refused requests counted but not yet written."""
        return sum(t.count for t in self._tallies.values())

    async def flush(self, *, everything: bool = False) -> int:
        """Write one row per source of every minute that has ended (``everything``: the current one too).

        Returns the rows written. A row the database refuses is kept for the next flush.
        """
        current = int(self._clock.now() // MINUTE)
        due = sorted(k for k in self._tallies if everything or k[0] < current)
        taken = [(key, self._tallies.pop(key)) for key in due]  # out of the table before the first await
        for minute in {k[0] for k in due} - {k[0] for k in self._tallies}:
            self._sources.pop(minute, None)
        written = 0
        for index, ((minute, source), tally) in enumerate(taken):
            try:
                await self._record("anonymous", "login_failure", tally.detail(source, minute))
            except (StoreError, asyncio.CancelledError) as exc:
                for key, kept in taken[index:]:
                    self._keep(key, kept)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.warning("%d failed login(s) could not be audited yet (%s); they are kept for the next try",
                            sum(t.count for _k, t in taken[index:]), exc)
                break
            written += 1
        return written

    def _keep(self, key: tuple[int, str], tally: _Tally) -> None:
        present = self._tallies.get(key)
        if present is None:
            self._tallies[key] = tally
            self._sources[key[0]] += 1
        else:
            present.merge(tally)

    async def run(self, every_s: float = FLUSH_EVERY_S) -> None:
        """Flush ended minutes every ``every_s`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.flush()
            except Exception:  # never let the counter die while the API keeps refusing requests
                log.exception("flushing failed logins to the audit log failed")

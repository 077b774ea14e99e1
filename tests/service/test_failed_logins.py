"""Failed logins are counted per source and minute; memory stays bounded and no count is lost."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster.errors import StoreUnavailable
from broadcaster.service.failed_logins import MAX_KEPT, MAX_SOURCES, OTHER_SOURCES, FailedLogins
from tests.service.support import ManualClock

T0 = 1_800_000_000.0  # a minute boundary


class Rows:
    """The audit rows written, and a database that refuses the next ``refuse`` of them."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.refuse = 0

    async def __call__(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        if self.refuse:
            self.refuse -= 1
            raise StoreUnavailable("the database is restarting")
        assert (actor, action) == ("anonymous", "login_failure")
        self.written.append(detail)


async def test_a_minute_is_written_once_it_has_ended() -> None:
    clock, rows = ManualClock(T0 + 10), Rows()
    failed = FailedLogins(rows, clock)
    for _ in range(5):
        failed.add("192.0.2.7", "unknown token", token_id="00aa", method="GET", path="/api/me")
    assert await failed.flush() == 0 and failed.pending == 5  # the minute is still under way
    clock.advance(50)
    failed.add("192.0.2.7", "malformed token", token_id=None, method="POST", path="/api/alerts")  # the next one
    assert await failed.flush() == 1 and failed.pending == 1
    (row,) = rows.written
    assert row["count"] == 5 and row["reasons"] == {"unknown token": 5} and row["token_ids"] == ["00aa"]
    assert row["minute"].startswith("2027-01-15T08:00:00")


async def test_a_flood_from_many_sources_keeps_memory_bounded() -> None:
    clock, rows = ManualClock(T0), Rows()
    failed = FailedLogins(rows, clock)
    for n in range(MAX_SOURCES + 5):
        failed.add(f"10.0.{n // 256}.{n % 256}", "unknown token", token_id=f"{n:016x}", method="GET",
                   path=f"/api/x{n % (MAX_KEPT + 3)}")
    assert await failed.flush(everything=True) == MAX_SOURCES + 1
    other = [r for r in rows.written if r["source"] == OTHER_SOURCES]
    assert len(other) == 1 and other[0]["count"] == 5
    assert sum(r["count"] for r in rows.written) == MAX_SOURCES + 5
    many = FailedLogins(rows, clock)
    for n in range(MAX_KEPT + 7):
        many.add("192.0.2.9", "unknown token", token_id=f"{n:016x}", method="GET", path=f"/api/p{n}")
    await many.flush(everything=True)
    last = rows.written[-1]
    assert len(last["token_ids"]) == MAX_KEPT and last["more_token_ids"] == 7
    assert len(last["paths"]) == MAX_KEPT + 1 and last["paths"]["(other paths)"] == 7


async def test_counts_the_database_refused_are_written_by_the_next_flush(caplog: pytest.LogCaptureFixture) -> None:
    clock, rows = ManualClock(T0), Rows()
    failed = FailedLogins(rows, clock)
    for source in ("192.0.2.1", "192.0.2.2"):
        for _ in range(3):
            failed.add(source, "no bearer token", token_id=None, method="GET", path="/api/me")
    clock.advance(60)
    rows.refuse = 1
    assert await failed.flush() == 0 and failed.pending == 6
    assert "6 failed login(s) could not be audited yet" in caplog.text
    failed.add("192.0.2.1", "no bearer token", token_id=None, method="GET", path="/api/me")  # a new minute
    assert await failed.flush() == 2
    assert sorted((r["source"], r["count"]) for r in rows.written) == [("192.0.2.1", 3), ("192.0.2.2", 3)]
    assert failed.pending == 1

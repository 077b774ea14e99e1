"""How asyncpg's errors reach the rest of the code: as the store's own, retryable when waiting may help."""

from __future__ import annotations

import asyncpg
import pytest

from broadcaster.errors import IntegrityError, StoreConflict, StoreFull, StoreTimeout, StoreUnavailable
from broadcaster.store.postgres_db import mapped


@pytest.mark.parametrize(("raised", "expected"), [
    (asyncpg.CannotConnectNowError("the database system is starting up"), StoreUnavailable),
    (asyncpg.TooManyConnectionsError("sorry, too many clients already"), StoreUnavailable),
    (asyncpg.AdminShutdownError("terminating connection due to administrator command"), StoreUnavailable),
    (asyncpg.ConnectionFailureError("connection failure"), StoreUnavailable),
    (ConnectionResetError("reset by peer"), StoreUnavailable),
    (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), StoreTimeout),
    (asyncpg.DeadlockDetectedError("deadlock detected"), StoreConflict),
    (asyncpg.UniqueViolationError("duplicate key value"), IntegrityError),
])
def test_server_states_map_to_the_store_taxonomy(raised: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught, mapped("postgresql://db.example/broadcaster"):
        raise raised
    assert "db.example" in str(caught.value) or expected is IntegrityError


def test_a_bad_statement_is_a_bug_and_passes_through() -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError), mapped("postgresql://db.example/broadcaster"):
        raise asyncpg.PostgresSyntaxError("syntax error at or near SELEC")


def test_a_full_disk_is_said_as_such_not_as_a_server_that_is_busy() -> None:
    """disk_full (53100) sits in the "insufficient resources" class with too_many_connections, which waiting cures;
    a full disk is not cured by waiting, and the operator must hear what it is."""
    with pytest.raises(StoreFull) as caught, mapped("postgresql://db.example/broadcaster"):
        raise asyncpg.DiskFullError("could not extend file \"base/16384/16385\": No space left on device")
    assert not caught.value.retryable
    assert "database or disk is full" in str(caught.value) and "db.example" in str(caught.value)

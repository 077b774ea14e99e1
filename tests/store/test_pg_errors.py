"""How asyncpg's errors reach the rest of the code: as the store's own, retryable when waiting may help."""

from __future__ import annotations

import asyncpg
import pytest

from broadcaster.errors import IntegrityError, StoreConflict, StoreTimeout, StoreUnavailable
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

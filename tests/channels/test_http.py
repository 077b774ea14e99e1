"""What the aiohttp-based kinds share: Retry-After parsing and the connection-failure ladder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.channels.http import connection_failure, parse_retry_after
from broadcaster.errors import Reason
from broadcaster.secret import Secret

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), now=NOW) == 90.0
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=90), usegmt=True), now=NOW) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("  ") is None
    assert parse_retry_after("soon") is None


@given(st.one_of(st.none(), st.text(max_size=40), st.integers(-10**6, 10**6).map(str)))
def test_retry_after_is_never_negative_and_never_raises(value: str | None) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize(
    ("exc", "reason", "sent_maybe"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), Reason.TIMEOUT, False),
        (aiohttp.SocketTimeoutError("read"), Reason.TIMEOUT, True),
        (TimeoutError(), Reason.TIMEOUT, True),
        (aiohttp.ServerDisconnectedError(), Reason.NETWORK, True),
        (ConnectionResetError(104, "reset"), Reason.NETWORK, True),
    ],
    ids=["connect-timeout", "read-timeout", "timeout", "disconnected", "reset"],
)
def test_connection_failures(exc: BaseException, reason: Reason, sent_maybe: bool) -> None:
    """A refused connection (NETWORK, not sent) is proved against a closed port in test_conformance.py."""
    error = connection_failure(exc, "partner", ())
    assert error is not None
    assert (error.reason, error.retryable, error.sent_maybe) == (reason, True, sent_maybe)
    assert str(error).startswith("partner ")


def test_anything_else_is_not_a_connection_failure_and_secrets_are_masked() -> None:
    assert connection_failure(KeyError("x"), "partner", ()) is None
    secret = Secret("hunter2-token", "TOKEN")
    error = connection_failure(aiohttp.ClientPayloadError("body hunter2-token cut"), "partner", (secret,))
    assert error is not None and "hunter2-token" not in str(error)

"""The project's one error taxonomy.

BroadcasterError
├── InputError             bad input; the CLI exits 2 and nothing is sent
│   ├── ConfigError        channels.toml or a recipient list
│   ├── TemplateError      a template file, its approval or its length budget
│   ├── VariableError      a value an officer typed
│   ├── SelectionError     a --channels / --area selection
│   └── Conflict           valid, but the alert's state does not allow it now (HTTP 409)
├── Forbidden              the user's role may not do this (HTTP 403)
├── DeliveryError          one failed attempt at one delivery, raised by channels
└── StoreError             the database refused or failed a call; the call changed nothing
    ├── StoreUnavailable   unreachable, dropped, or locked by another writer (retryable)
    ├── StoreTimeout       a statement ran past its command timeout (retryable)
    ├── StoreConflict      the database aborted a transaction to break a deadlock (retryable)
    ├── StoreFull          the database or its disk is full (not retryable until space is freed)
    └── IntegrityError     a statement broke a constraint (not retryable)

A DeliveryError always says whether a retry may help (``retryable``) and, when the
provider said so, how long to wait (``retry_after``). Retryability is an explicit
attribute set by each provider's mapping function (and by the store, for its own
errors), never inferred from the class
tree: in python-telegram-bot ``BadRequest`` subclasses ``NetworkError``, so
``except NetworkError: retry`` would retry a message that is simply too long.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class Refusal(StrEnum):
    """Why a request was refused, finer than its HTTP code: the API's ``"reason"``, which the console translates.

    Stable names (docs/api.md lists them); an error without one has ``refusal`` None.
    """

    REQUIRED = "required"  # required variables not given (params: variables, every missing name; invalid, others)
    INVALID = "invalid_values"  # several values refused at once (params: variables, their names)
    BOTH_LANGUAGES = "both_languages"  # a text variable needs a value in both languages
    TOO_LONG = "too_long"  # longer than the variable's approved max_length (params: max)
    NOT_A_NUMBER = "not_a_number"
    OUT_OF_RANGE = "out_of_range"  # a number outside the variable's min..max (params: min, max)
    NOT_A_CHOICE = "not_a_choice"  # an enum or place value the template does not offer
    BAD_DATETIME = "bad_datetime"  # not an ISO 8601 date and time
    NO_OFFSET = "no_offset"  # a date and time without its UTC offset
    TIME_RULE = "time_rule"  # a time outside its rule (params: rule = future|past|ahead|ago|after, hours, after)
    FORBIDDEN_ROLE = "forbidden_role"  # the user's role may not (params: needs, role)


RefusalParam = str | int | float | list[str]  # a refusal's names and numbers (a list: several names)


class BroadcasterError(Exception):
    """Base of every error this project raises on purpose.

    ``refusal`` (a Refusal) and ``refusal_params`` (plain values: names and numbers, never secrets) say why in a form
    a client can translate; the message stays the full English text.
    """

    refusal: Refusal | None = None
    refusal_params: dict[str, RefusalParam] | None = None

    def because(self, reason: Refusal, **params: RefusalParam) -> Self:
        """Set why (for ``raise SomeError(...).because(Refusal.X, key=value)``); returns the error itself."""
        self.refusal = reason
        self.refusal_params = dict(params)
        return self


class InputError(BroadcasterError):
    """Invalid input: names what is wrong and where. Nothing is sent."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(InputError):
    """A problem in channels.toml or a file it points to."""


class TemplateError(InputError):
    """A problem in a template file, its approval, or its worst-case length."""


class VariableError(InputError):
    """A variable value that fails validation; ``variable`` names it (the HTTP API's ``variables.NAME``)."""

    def __init__(self, message: str, *, where: str | None = None, variable: str | None = None) -> None:
        self.variable = variable
        super().__init__(message, where=where)


class SelectionError(InputError):
    """A channel or area selection that matches nothing or names unknown ids."""


class Conflict(InputError):
    """A well-formed request the current state refuses: confirming one's own fire, a closed window, …"""


class Forbidden(BroadcasterError):
    """The user's role may not do this; the message says what would be needed."""


class Reason(StrEnum):
    """Why a delivery attempt failed, in provider-neutral words."""

    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    RECIPIENT_GONE = "recipient_gone"
    SERVER = "server"
    NETWORK = "network"
    TIMEOUT = "timeout"


class DeliveryError(BroadcasterError):
    """One failed attempt. Channels raise only this for provider trouble.

    ``sent_maybe`` is true when the request may have reached the provider before
    the failure (a read timeout, a dropped connection after the body left): the
    engine then records the attempt as ``unknown`` and reconciles before resending.
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        http_status: int | None = None,
        provider_code: str | None = None,
        sent_maybe: bool = False,
    ) -> None:
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.http_status = http_status
        self.provider_code = provider_code
        self.sent_maybe = sent_maybe
        super().__init__(message)

    def __repr__(self) -> str:
        return (
            f"DeliveryError(reason={self.reason.value!r}, retryable={self.retryable}, "
            f"retry_after={self.retry_after}, http_status={self.http_status}, "
            f"provider_code={self.provider_code!r}, message={str(self)!r})"
        )


class StoreError(BroadcasterError):
    """A store call failed and changed nothing. ``retryable`` says whether trying again may help."""

    retryable = False


class StoreUnavailable(StoreError):
    """The database could not be reached, dropped the connection, or stayed locked; retry later."""

    retryable = True


class StoreTimeout(StoreError):
    """A statement ran past the store's command timeout; it was cancelled. Retry later."""

    retryable = True


class StoreConflict(StoreError):
    """The database aborted a transaction to break a deadlock (or a serialization failure); run it again."""

    retryable = True


class StoreFull(StoreError):
    """The database or its disk is full (SQLite SQLITE_FULL, PostgreSQL disk_full 53100); the call kept nothing."""


class IntegrityError(StoreError):
    """A statement broke a constraint (a duplicate key, a CHECK, an append-only trigger)."""


class Fenced(BroadcasterError):
    """A request was stopped before its bytes left: this node's fence no longer holds (see engine.node)."""

"""A value that must never reach a log, an error message or a repr."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

_MASK: Final = "********"


class Secret:
    """Holds a credential read from the environment.

    ``str()``, ``repr()`` and ``format()`` are all masked; only ``reveal()`` gives
    the value, and only channel adapters call it, right where the SDK needs it.
    """

    __slots__ = ("_env_name", "_value")

    def __init__(self, value: str, env_name: str) -> None:
        self._value = value
        self._env_name = env_name

    def reveal(self) -> str:
        return self._value

    @property
    def env_name(self) -> str:
        return self._env_name

    def __repr__(self) -> str:
        return f"Secret(env={self._env_name!r}, value={_MASK!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")


def scrub(text: str, secrets: list[Secret] | tuple[Secret, ...]) -> str:
    """Replace every secret value in ``text`` with the mask.

    Used on provider error messages, which sometimes echo the request URL
    (Telegram puts the bot token in the path).
    """
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, _MASK)
    return text


def encoded_forms(secret: Secret) -> list[Secret]:
    """The secret as typed and as SDKs write it into URLs and OAuth headers.

    Telegram puts the token percent-encoded in the URL path; OAuth percent-encodes
    keys into the header and once more into the signature base string, which
    oauthlib logs at DEBUG.
    """
    value = secret.reveal()
    forms = [value, quote(value, safe=""), quote(value, safe="~"), quote(quote(value, safe="~"), safe="~")]
    return [Secret(v, secret.env_name) for v in dict.fromkeys(forms)]


class SecretScrubber(logging.Filter):
    """Masks registered secrets in log records, including their formatted traceback.

    A logger's filters see only records created on that very logger, so the filter
    is attached to each SDK logger by name rather than to a parent.
    """

    def __init__(self, logger_names: Sequence[str]) -> None:
        super().__init__()
        self._secrets: list[Secret] = []
        self._formatter = logging.Formatter()
        for name in logger_names:
            logging.getLogger(name).addFilter(self)

    def add(self, secret: Secret) -> None:
        self._secrets.extend(encoded_forms(secret))

    def discard(self, secret: Secret) -> None:
        for variant in encoded_forms(secret):
            if variant in self._secrets:
                self._secrets.remove(variant)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        clean = scrub(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(self._formatter.formatException(record.exc_info), self._secrets)
        return True

"""A value that must never reach a log, an error message, a repr or a stored detail."""

from __future__ import annotations

import base64
import binascii
import html
import itertools
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import quote, quote_plus

_MASK: Final = "********"
_MIN_FORMS: Final = 8  # a value at least this long is also masked in its encoded and case-folded forms
_MIN_PART: Final = 12  # a colon-separated part this long is masked on its own (a Telegram token's secret half)
# A run that may be base64 (standard or URL-safe alphabet), long enough to hide a credential.
_BASE64_RUN: Final = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


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


class Redactor:
    """Masks every form of some secrets in a text: the one definition of what "a form of a secret" is.

    Providers and SDKs echo credentials back in more shapes than the value as typed:

    * the value itself, in any case: python-telegram-bot capitalises an error's
      description, lower-casing the ``/bot<token>/`` an echoing server put in it;
    * percent-encoded (once and twice, ``%3A`` or ``%3a``), form-encoded, JSON-escaped
      (``\\/``) and HTML-escaped, as URLs, OAuth headers and signature base strings carry it;
    * the long parts of a ``id:secret`` credential on their own (a Telegram bot token);
    * HTTP basic auth: base64 of ``user:password`` for every pair of the secrets
      (Twilio's ``Basic base64(SID:token)``), and any base64 run whose decoded bytes
      contain a secret, at any alignment.

    Log records (:class:`SecretScrubber`), provider error texts (:func:`scrub`) and
    every stored attempt detail (the dispatcher, through :meth:`Channel.redactor
    <broadcaster.channels.base.Channel.redactor>`) are all cleaned by this class.
    """

    __slots__ = ("_needles", "_pattern")

    def __init__(self, secrets: Iterable[Secret]) -> None:
        values = list(dict.fromkeys(s.reveal() for s in secrets if s.reveal()))
        forms: set[str] = set()
        for value in values:
            forms |= _forms(value)
        for user, password in itertools.permutations([v for v in values if len(v) >= _MIN_FORMS], 2):
            forms |= _basic_auth(user, password)
        ordered = sorted(forms, key=len, reverse=True)  # the longest form first: nothing half-masked is left
        self._pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None
        self._needles = tuple(dict.fromkeys(v.lower() for v in values if len(v) >= _MIN_FORMS))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:
        return f"Redactor({len(self._needles)} secret(s), value={_MASK!r})"

    def clean(self, text: str) -> str:
        """``text`` with every form of every secret replaced by the mask."""
        if self._pattern is None or not text:
            return text
        text = self._pattern.sub(_MASK, text)
        if self._needles:
            text = _BASE64_RUN.sub(self._decoded, text)
        return text

    def clean_optional(self, text: str | None) -> str | None:
        return None if text is None else self.clean(text)

    def _decoded(self, match: re.Match[str]) -> str:
        run = match.group(0)
        for plain in _decodings(run):
            if any(needle in plain for needle in self._needles):
                return _MASK
        return run


def _forms(value: str) -> set[str]:
    forms = {value}
    if len(value) < _MIN_FORMS:
        return forms
    once = quote(value, safe="")
    forms |= {once, quote(value, safe="~"), quote(once, safe=""), quote(quote(value, safe="~"), safe="~"),
              quote_plus(value), value.replace("/", "\\/"), html.escape(value)}
    forms |= {part for part in value.split(":") if len(part) >= _MIN_PART}
    return forms


def _basic_auth(user: str, password: str) -> set[str]:
    raw = f"{user}:{password}".encode()
    forms = set()
    for encoded in (base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")):
        forms |= {encoded, encoded.rstrip("="), quote(encoded, safe="")}
    return forms


def _decodings(run: str) -> Iterable[str]:
    """``run`` decoded as base64 from each of the four alignments, in both alphabets (lower-cased text)."""
    for start in range(4):
        body = run[start:].rstrip("=")
        body = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
        padded = body + "=" * (-len(body) % 4)
        for altchars in (b"+/", b"-_"):
            try:
                raw = base64.b64decode(padded.encode("ascii"), altchars=altchars, validate=False)
            except (binascii.Error, ValueError):
                continue
            yield raw.decode("latin-1").lower()


def scrub(text: str, secrets: Sequence[Secret]) -> str:
    """Replace every form of every secret in ``text`` with the mask (see :class:`Redactor`).

    Used on provider error messages, which sometimes echo the request URL
    (Telegram puts the bot token in the path) or its Authorization header.
    """
    return Redactor(secrets).clean(text) if secrets else text


class SecretScrubber(logging.Filter):
    """Masks registered secrets, in every form :class:`Redactor` knows, in log records and their traceback.

    A logger's filters see only records created on that very logger, so the filter
    is attached to each SDK logger by name rather than to a parent.
    """

    def __init__(self, logger_names: Sequence[str]) -> None:
        super().__init__()
        self._secrets: list[Secret] = []
        self._redactor = Redactor(())
        self._formatter = logging.Formatter()
        for name in logger_names:
            logging.getLogger(name).addFilter(self)

    def add(self, secret: Secret) -> None:
        self._secrets.append(secret)
        self._redactor = Redactor(self._secrets)

    def discard(self, secret: Secret) -> None:
        if secret in self._secrets:
            self._secrets.remove(secret)
            self._redactor = Redactor(self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor
        if not redactor:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        clean = redactor.clean(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redactor.clean(self._formatter.formatException(record.exc_info))
        return True

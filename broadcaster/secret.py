"""A value that must never reach a log, an error message or a repr."""

from __future__ import annotations

from typing import Final

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

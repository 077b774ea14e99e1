"""Stand-ins for an aiohttp session and response, for recording transports (dry-run).

A kind whose SDK talks through an aiohttp session (tweepy) or that posts through
one itself (webhooks) is given a :class:`RecordingSession` instead of a real one
in a dry-run. Everything above it runs unchanged: request building, signing,
answer parsing, classification. The kind's module supplies the answer, in its
provider's wire format; this module only carries it. Nothing here opens a socket,
and nothing keeps a copy of what was sent: :class:`~broadcaster.channels.base.Clients`
counts the requests.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Self

import orjson

from broadcaster.channels.base import Clients

Answer = Callable[[int, str, str, Mapping[str, Any]], "RecordedResponse"]
"""``(number, method, url, request keyword arguments) -> response``: a kind's simulated provider.

``number`` counts this provider's requests in the run (1, 2, ...); answers use it as an id."""


class _Content:
    """``response.content``: only the bounded ``read(n)`` the webhook channel uses."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self, n: int = -1) -> bytes:
        return self._body if n < 0 else self._body[:n]


class RecordedResponse:
    """An answer made on this machine, with the parts of ``aiohttp.ClientResponse`` SDKs read."""

    def __init__(self, status: int, body: Any, *, reason: str = "OK", headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.reason = reason
        self._body = body if isinstance(body, bytes) else orjson.dumps(body)
        self.headers: dict[str, str] = {"Content-Type": "application/json", **(headers or {})}
        self.content = _Content(self._body)

    async def read(self) -> bytes:
        return self._body

    async def text(self, encoding: str | None = None) -> str:
        return self._body.decode(encoding or "utf-8")

    async def json(self, **_: Any) -> Any:
        return orjson.loads(self._body)

    def release(self) -> None:
        """Nothing to give back to a pool."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class _Pending:
    """``session.request(...)``: usable as ``async with`` (aiohttp style) or awaited."""

    def __init__(self, session: RecordingSession, method: str, url: str, kwargs: Mapping[str, Any]) -> None:
        self._session = session
        self._request = (method, url, kwargs)

    async def _respond(self) -> RecordedResponse:
        number = await self._session.clients.answer(self._session.provider)
        return self._session.answer_with(number, *self._request)

    def __await__(self) -> Generator[Any, None, RecordedResponse]:
        return self._respond().__await__()

    async def __aenter__(self) -> RecordedResponse:
        return await self._respond()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class RecordingSession:
    """Takes the place of a kind's shared ``aiohttp.ClientSession`` in a dry-run.

    ``answer`` is the kind's simulated provider; each request waits ``clients``'
    latency first (virtual time under a dry-run) and is counted under ``provider``.
    """

    def __init__(self, clients: Clients, provider: str, answer: Answer) -> None:
        self.clients = clients
        self.provider = provider
        self.answer_with = answer
        self.closed = False

    def request(self, method: str, url: Any, **kwargs: Any) -> _Pending:
        return _Pending(self, method.upper(), str(url), kwargs)

    def post(self, url: Any, **kwargs: Any) -> _Pending:
        return self.request("POST", url, **kwargs)

    async def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"<RecordingSession {self.provider}>"

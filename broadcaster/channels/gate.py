"""The last look at the fence, taken as a request's bytes are about to leave.

The dispatcher checks its fence before it starts an attempt, but an SDK may then
spend a while building the request, waiting for a pooled connection or shaking
hands with TLS. A process stalled in that stretch (SIGSTOP, a frozen VM) wakes
with its leases possibly taken over, and would post anyway. So the dispatcher
opens a :class:`Gate` around each attempt, and every live transport calls
:func:`last_look` once it holds a connection and before it writes: aiohttp
sessions through a trace hook (:func:`trace_config`), httpx through a transport
that adds an httpcore trace. A gate that no longer holds raises
:class:`~broadcaster.errors.Fenced` and remembers it, so the dispatcher
abandons the attempt without recording it, whatever error the SDK wrapped
the exception in. Nothing left the machine; reconciliation will find nothing and
the delivery is sent once, by its new owner.

Dry-runs open no gate; outside one, :func:`last_look` does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from broadcaster.errors import Fenced

if TYPE_CHECKING:
    import aiohttp


class Gate:
    """One attempt's fence: ``holds()`` is asked at the last moment; ``shut`` says it said no."""

    __slots__ = ("_holds", "shut")

    def __init__(self, holds: Callable[[], bool]) -> None:
        self._holds = holds
        self.shut = False

    def look(self) -> None:
        if not self._holds():
            self.shut = True
            raise Fenced("this node's fence no longer holds; the request was not sent")


_current: ContextVar[Gate | None] = ContextVar("broadcaster_send_gate", default=None)


@contextlib.contextmanager
def opened(holds: Callable[[], bool]) -> Iterator[Gate]:
    """Run an attempt behind a gate (the current task's context only)."""
    gate = Gate(holds)
    token = _current.set(gate)
    try:
        yield gate
    finally:
        _current.reset(token)


def last_look() -> None:
    """Raise :class:`Fenced` if the current attempt's gate no longer holds; nothing outside an attempt."""
    gate = _current.get()
    if gate is not None:
        gate.look()


async def _on_connection(*_: Any) -> None:
    last_look()


def trace_config() -> aiohttp.TraceConfig:
    """An aiohttp trace that looks at the gate once a request has its connection, new or reused."""
    import aiohttp

    config = aiohttp.TraceConfig()
    config.on_connection_create_end.append(_on_connection)
    config.on_connection_reuseconn.append(_on_connection)
    return config


async def _httpcore_trace(event: str, _info: dict[str, Any]) -> None:
    if event.endswith("send_request_headers.started"):
        last_look()


def httpx_transport(**options: Any) -> Any:
    """An ``httpx.AsyncHTTPTransport(**options)`` that looks at the gate before each request's headers go."""
    import httpx

    class GatedTransport(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            request.extensions = {**request.extensions, "trace": _httpcore_trace}
            return await super().handle_async_request(request)

    return GatedTransport(**options)

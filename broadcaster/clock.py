"""Injectable time.

All engine timing goes through the running event loop's clock (``loop.time()``
and ``asyncio.sleep``). Under :class:`VirtualTimeLoop` that clock is virtual:
when nothing is ready to run, the loop jumps straight to the next timer instead
of waiting. Dry-runs and rehearsals use it so a rate-limited list of 100,000 SMS
or a 12-hour runbook plays out in seconds while every timestamp in the log
still shows when each message *would* have left.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Clock:
    """Wall time and monotonic time, both derived from the running loop's clock."""

    def __init__(self, wall_start: float | None = None) -> None:
        self._wall_start = wall_start
        self._loop_start: float | None = None

    def _bind(self) -> float:
        loop = asyncio.get_running_loop()
        if self._loop_start is None:
            self._loop_start = loop.time()
            if self._wall_start is None:
                self._wall_start = time.time()
        return loop.time()

    def monotonic(self) -> float:
        return self._bind()

    def now(self) -> float:
        """Unix seconds: real time on a real loop, simulated time on a virtual one."""
        loop_now = self._bind()
        assert self._wall_start is not None and self._loop_start is not None
        return self._wall_start + (loop_now - self._loop_start)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _VirtualSelector(selectors.BaseSelector):
    """Wraps a real selector; where the loop would block with a timeout, time jumps instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only real I/O can wake us
            return self._real.select(None)
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock only moves when every task is waiting on a timer."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = start
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)

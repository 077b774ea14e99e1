"""Injectable time.

All engine timing goes through the running event loop's clock (``loop.time()``
and ``asyncio.sleep``). Under :class:`VirtualTimeLoop` that clock is virtual:
when nothing is ready to run, the loop jumps straight to the next timer instead
of waiting. Dry-runs and rehearsals use it so a rate-limited list of 100,000 SMS
or a 12-hour runbook plays out in seconds while every timestamp in the log
still shows when each message *would* have left.

Real work the loop waits for (a database round trip, a file read on a worker
thread) must not let virtual time jump: the log would then show database
latency as if it were provider latency, and a statement's timeout would fire
at once. Code that awaits real I/O wraps it in :func:`real_io` (or uses
:func:`in_thread`); while any such wait is open, the virtual loop blocks on real
I/O with its clock frozen. Only a wait that outlasts ``REAL_STALL_S`` of real
time lets the clock move again, so a hung database still times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

REAL_STALL_S: Final = 30.0  # real seconds a real wait may freeze virtual time before the clock moves on
_REAL_POLL_S: Final = 0.5


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


@contextlib.contextmanager
def real_io() -> Iterator[None]:
    """Mark a real wait (I/O, a thread): a virtual loop keeps its clock still until it ends."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        yield
        return
    token = object()
    loop.real_waits[token] = time.monotonic()
    try:
        yield
    finally:
        del loop.real_waits[token]


async def real_sleep(seconds: float) -> None:
    """Wait ``seconds`` of real time, whatever the loop's clock (a lock held by another connection).

    On a virtual loop ``asyncio.sleep`` would return at once, the clock having jumped; the wait
    is then a real sleep on a worker thread, which keeps the virtual clock still meanwhile.
    """
    if isinstance(asyncio.get_running_loop(), VirtualTimeLoop):
        await in_thread(time.sleep, seconds)
    else:
        await asyncio.sleep(seconds)


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args)`` on a worker thread (file reads, CPU work), never on the event loop."""
    with real_io():
        return await asyncio.to_thread(fn, *args, **kwargs)


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
        loop = self._loop
        if loop.real_waits and time.monotonic() - min(loop.real_waits.values()) < REAL_STALL_S:
            # Real I/O is in flight: wait for it in real time, with the virtual clock still.
            return self._real.select(_REAL_POLL_S)
        loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock only moves when every task is waiting on a timer."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = start
        self.real_waits: dict[object, float] = {}  # open real_io() blocks -> real monotonic time each began
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)

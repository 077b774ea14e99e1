"""The benchmark's own view of a database while workers run: one store kept open on a thread's loop.

Benchmark code only: the product never waits on a loop from another thread.
Polling through one open store (rather than opening a connection per poll)
keeps the observer's cost on PostgreSQL negligible while a run is in flow.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from broadcaster.store import Store, open_store

T = TypeVar("T")


class Observer:
    def __init__(self, database: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-observer", daemon=True)
        self.thread.start()
        self.store: Store = self._run(open_store(database))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def call(self, fn: Callable[[Store], Awaitable[T]]) -> T:
        async def go() -> T:
            return await fn(self.store)

        return self._run(go())

    def close(self) -> None:
        self._run(self.store.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

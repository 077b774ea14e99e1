"""``broadcaster worker`` (and ``serve``'s background worker): deliver what any node commits, until stopped."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Final

from broadcaster.anchors import seal_finished
from broadcaster.app.context import App
from broadcaster.config import ChannelConfig
from broadcaster.engine.dispatcher import Tuning
from broadcaster.engine.node import Node
from broadcaster.engine.runner import work
from broadcaster.errors import SelectionError, StoreError

log = logging.getLogger("broadcaster.worker")

SETTLE_AFTER_S: Final = 5.0  # by then a long-running process has loaded its SDKs and opened its channels
SEAL_EVERY_S: Final = 10.0  # how often a worker seals the alerts any node finished


def settle_heap_soon() -> None:
    """For ``serve`` and ``worker``: once start-up is over, keep full garbage collections off what it loaded.

    The SDKs, templates and config loaded by then live as long as the process.
    Frozen (:func:`gc.freeze`), they are no longer walked by every full
    collection: in bench scenario 15 each of those took 26 ms of the event loop
    before, 2–4 ms after.
    """

    def settle() -> None:
        gc.collect()
        gc.freeze()

    asyncio.get_running_loop().call_later(SETTLE_AFTER_S, settle)


def served_channels(app: App, selection: str) -> list[ChannelConfig]:
    """``all`` or a comma-separated list of channel ids; an unknown id is an error."""
    if selection.strip() in ("", "all"):
        return list(app.config.channels)
    wanted = [c.strip() for c in selection.split(",") if c.strip()]
    by_id = {c.id: c for c in app.config.channels}
    unknown = [c for c in wanted if c not in by_id]
    if unknown:
        raise SelectionError(f"--channels: unknown channel id {unknown[0]!r} (known: {', '.join(by_id)})")
    return app.config.with_fallbacks(by_id[c] for c in wanted)  # a channel's fallback is served with it


async def run_worker(app: App, node: Node, *, selection: str = "all", poll_s: float = 1.0,
                     seal_every_s: float = SEAL_EVERY_S) -> None:
    """Serve the selected channels as ``node`` (not yet running) until cancelled; seal what any node finished."""
    async with asyncio.TaskGroup() as group:
        group.create_task(work(app.store, served_channels(app, selection), node, tuning=Tuning(idle_poll_s=poll_s),
                               status_callback=app.status_callback), name="work")
        group.create_task(keep_sealing(app, seal_every_s), name="seal")


async def keep_sealing(app: App, every_s: float = SEAL_EVERY_S) -> None:
    """Anchor the final states of every alert whose deliveries are all final (whichever node sent them).

    A queued alert has no single process that sees its end; each worker looks every
    ``every_s`` seconds. A database that fails now is asked again next time.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            sealed = await seal_finished(app.store)
        except StoreError as exc:
            log.warning("sealing finished alerts failed (%s: %s); trying again in %.0f s", type(exc).__name__, exc,
                        every_s)
            continue
        except Exception:  # never worth stopping delivery for: the next sweep tries again
            log.exception("sealing finished alerts failed; trying again in %.0f s", every_s)
            continue
        if sealed:
            log.info("sealed %d finished alert(s) in the audit log: %s", len(sealed), ", ".join(sealed))

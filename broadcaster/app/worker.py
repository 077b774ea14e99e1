"""``broadcaster worker`` (and ``serve``'s background worker): deliver what any node commits, until stopped."""

from __future__ import annotations

from broadcaster.app.context import App
from broadcaster.config import ChannelConfig
from broadcaster.engine.dispatcher import Tuning
from broadcaster.engine.node import Node
from broadcaster.engine.runner import work
from broadcaster.errors import SelectionError


def served_channels(app: App, selection: str) -> list[ChannelConfig]:
    """``all`` or a comma-separated list of channel ids; an unknown id is an error."""
    if selection.strip() in ("", "all"):
        return list(app.config.channels)
    wanted = [c.strip() for c in selection.split(",") if c.strip()]
    by_id = {c.id: c for c in app.config.channels}
    unknown = [c for c in wanted if c not in by_id]
    if unknown:
        raise SelectionError(f"--channels: unknown channel id {unknown[0]!r} (known: {', '.join(by_id)})")
    return [by_id[c] for c in wanted]


async def run_worker(app: App, node: Node, *, selection: str = "all", poll_s: float = 1.0) -> None:
    """Serve the selected channels as ``node`` (not yet running) until cancelled."""
    await work(app.store, served_channels(app, selection), node, tuning=Tuning(idle_poll_s=poll_s),
               status_callback=app.status_callback)

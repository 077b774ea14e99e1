"""Run deliveries for a mode: live transports on the real clock, or recording ones on a virtual clock.

Every mode builds the same channel adapters (``channels.registry.build_channels``)
on one :class:`~broadcaster.channels.base.Clients` per run; a dry-run's Clients
record instead of sending, so the SDKs still build, sign and parse every request.
Dry-run is enforced, not intended: the whole run happens inside
:func:`broadcaster.netguard.no_network`, so any attempt to open a connection
raises instead of leaving the machine. (With PostgreSQL, the store's own
connection, opened before the guard, is the one socket a dry-run uses.)

Exercise and live runs are nodes (:mod:`broadcaster.engine.node`): they
register, renew their leases and share each channel's rate with every other
process on the database. :func:`work` is ``broadcaster worker``: it serves
every channel, for every live and exercise alert, until stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AsyncExitStack
from typing import Any, Final

from broadcaster.channels.base import Channel, Clients
from broadcaster.channels.registry import build_channels
from broadcaster.clock import Clock, run_virtual
from broadcaster.config import ChannelConfig
from broadcaster.engine.dispatcher import Dispatcher, OutcomeObserver, ProgressHook, Tuning, Waker
from broadcaster.engine.node import Node
from broadcaster.engine.outbox import Plan, commit
from broadcaster.engine.retry import RetryPolicy
from broadcaster.netguard import no_network
from broadcaster.store.base import Store


async def deliver(
    store: Store,
    configs: Iterable[ChannelConfig],
    mode: str,
    *,
    plan: Plan | None = None,
    alert_ids: tuple[str, ...] | None = None,
    progress: ProgressHook | None = None,
    on_commit: Callable[[int, int], None] | None = None,
    clock: Clock | None = None,
    tuning: Tuning | None = None,
    policy: RetryPolicy | None = None,
    observer: OutcomeObserver | None = None,
    status_callback: str | None = None,
) -> None:
    """Open every channel, commit ``plan`` (if any), then fan out until done.

    ``observer`` sees every recorded outcome (metrics); ``status_callback`` is the
    URL Twilio posts delivery receipts to (``{public_url}/twilio/status``).
    """
    clock = clock or Clock()
    async with AsyncExitStack() as stack:
        # Clients are created before the outbox commit so the first request leaves right after it.
        channels = await open_channels(stack, configs, mode, status_callback)
        real = mode != "dry-run"
        dispatcher = Dispatcher(store, channels, clock=clock, progress=progress, tuning=tuning,
                                policy=policy, observer=observer, shared_rates=real)
        if real:  # registered and beating before the commit: nothing but claims between it and the first send
            stack.enter_context(Node(store, "fire", owner=dispatcher.owner).running())
        if plan is not None:
            counts = commit(store, plan)
            if on_commit:
                on_commit(*counts)
            alert_ids = (plan.alert.id,)
        await dispatcher.run(alert_ids)


SERVED_MODES: Final = ("live", "exercise")  # a worker never touches a dry-run alert


async def work(
    store: Store,
    configs: Iterable[ChannelConfig],
    node: Node,
    *,
    tuning: Tuning | None = None,
    status_callback: str | None = None,
) -> None:
    """Serve ``configs``' channels as ``node`` until cancelled: claim, send, record, wait for more."""
    waker = Waker()
    async with AsyncExitStack() as stack:
        channels = await open_channels(stack, configs, "live", status_callback)
        dispatcher = Dispatcher(store, channels, tuning=tuning, owner=node.id, shared_rates=True)
        with node.running(waker):
            await dispatcher.run(None, modes=SERVED_MODES, waker=waker)


async def open_channels(stack: AsyncExitStack, configs: Iterable[ChannelConfig], mode: str,
                        status_callback: str | None) -> dict[str, Channel]:
    """Build every channel for ``mode`` and open it on ``stack`` (opening a client makes no network call).

    The channels share one :class:`Clients` (recording for a dry-run), entered first so it closes last.
    """
    clients = await stack.enter_async_context(Clients(mode == "dry-run", status_callback=status_callback))
    channels = build_channels(configs, clients, mode=mode)
    for channel in channels:
        await stack.enter_async_context(channel)
    return {c.id: c for c in channels}


def run_mode(mode: str, coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a delivery coroutine the way ``mode`` demands."""
    if mode == "dry-run":
        with no_network():
            run_virtual(coro_factory())
    else:
        asyncio.run(coro_factory())

"""Run deliveries: open the channels, commit the outbox, fan out.

Every mode builds the same channel adapters (``channels.registry.build_channels``)
on one :class:`~broadcaster.channels.base.Clients` per run. A dry-run's Clients
record instead of sending: the SDKs still build, sign and parse every request,
but no connection is opened, and the run is timed by whatever clock the caller's
loop keeps (a virtual one in ``broadcaster fire --dry-run`` and rehearsals). Exercise and live runs are
nodes (:mod:`broadcaster.engine.node`): they register, renew their leases, send
only behind their fence and share each channel's rate with every other process
on the database. :func:`work` is ``broadcaster worker``: it serves every
channel, for every live and exercise alert, until cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from typing import Final

from broadcaster.channels.base import Channel, Clients
from broadcaster.channels.registry import build_channels
from broadcaster.clock import Clock
from broadcaster.config import ChannelConfig
from broadcaster.engine.dispatcher import Dispatcher, OutcomeObserver, ProgressHook, Tuning
from broadcaster.engine.node import Fence, Node, Unfenced, Waker
from broadcaster.engine.outbox import Plan, commit
from broadcaster.engine.retry import RetryPolicy
from broadcaster.states import Mode
from broadcaster.store import Store

SERVED_MODES: Final = (Mode.LIVE, Mode.EXERCISE)  # a worker never touches a dry-run alert


async def deliver(
    store: Store,
    configs: Iterable[ChannelConfig],
    mode: Mode,
    *,
    plan: Plan | None = None,
    alert_ids: Sequence[str] | None = None,
    progress: ProgressHook | None = None,
    on_commit: Callable[[int, int], Awaitable[None]] | None = None,
    clock: Clock | None = None,
    tuning: Tuning | None = None,
    policy: RetryPolicy | None = None,
    observer: OutcomeObserver | None = None,
    status_callback: str | None = None,
    node: Node | None = None,
) -> None:
    """Open every channel, commit ``plan`` (if any), then fan out until done.

    ``observer`` sees every recorded outcome (metrics); ``status_callback`` is the
    URL Twilio posts delivery receipts to (``{public_url}/twilio/status``). A
    real run registers as a node of its own unless ``node`` (already running) is given.
    """
    async with AsyncExitStack() as stack:
        # Clients are opened before the outbox commit so the first request leaves right after it.
        channels = await open_channels(stack, configs, mode, status_callback)
        real = mode != Mode.DRY_RUN
        fence: Fence = Unfenced()
        if node is not None:
            fence = node
        elif real:  # registered and beating before the commit: nothing but claims between it and the first send
            fence = await stack.enter_async_context(Node(store, "fire").running())
        dispatcher = Dispatcher(store, channels, clock=clock, progress=progress, tuning=tuning, policy=policy,
                                observer=observer, fence=fence, shared_rates=real)
        if plan is not None:
            counts = await commit(store, plan)
            if on_commit:
                await on_commit(*counts)
            alert_ids = (plan.alert.id,)
        await dispatcher.run(alert_ids)


async def work(store: Store, configs: Iterable[ChannelConfig], node: Node, *, tuning: Tuning | None = None,
               status_callback: str | None = None) -> None:
    """Serve ``configs``' channels as ``node`` until cancelled: claim, send, record, wait for more."""
    waker = Waker()
    async with AsyncExitStack() as stack:
        channels = await open_channels(stack, configs, Mode.LIVE, status_callback)
        dispatcher = Dispatcher(store, channels, tuning=tuning, fence=node, shared_rates=True)
        await stack.enter_async_context(node.running(waker))
        await dispatcher.run(None, modes=SERVED_MODES, waker=waker)


async def open_channels(stack: AsyncExitStack, configs: Iterable[ChannelConfig], mode: Mode,
                        status_callback: str | None) -> dict[str, Channel]:
    """Build every channel for ``mode`` and open it on ``stack`` (opening a client makes no network call).

    The channels share one :class:`Clients` (recording for a dry-run), entered first so it closes last.
    """
    clients = await stack.enter_async_context(Clients(mode == Mode.DRY_RUN, status_callback=status_callback))
    channels = build_channels(configs, clients, mode=mode)
    for channel in channels:
        await stack.enter_async_context(channel)
    return {c.id: c for c in channels}

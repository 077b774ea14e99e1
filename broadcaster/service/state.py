"""The service's shared state, reached from handlers as ``request.app[SERVICE]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from broadcaster.app.context import App
from broadcaster.app.users import Users
from broadcaster.audit import AuditLog
from broadcaster.clock import Clock
from broadcaster.config import Config
from broadcaster.engine.ratelimit import RateLimiter
from broadcaster.service.failed_logins import FailedLogins
from broadcaster.service.hub import EventHub
from broadcaster.service.metrics import Metrics
from broadcaster.service.runs import Runs


@dataclass
class Limits:
    """How fast one user may fire, how long a two-person fire waits, how many event streams one user holds."""

    fire_rate_per_second: float = 0.2
    fire_burst: int = 5
    confirm_window_s: float = 600.0
    streams_per_user: int = 16  # a console holds one or two; hundreds are a leak or an attack on the server


@dataclass
class Service:
    app: App
    clock: Clock
    users: Users
    audit: AuditLog
    hub: EventHub
    metrics: Metrics
    runs: Runs
    limits: Limits
    failed_logins: FailedLogins  # refused requests, one audit row per source per minute
    fire_limiters: dict[str, RateLimiter] = field(default_factory=dict)
    throttled: set[str] = field(default_factory=set)  # users inside a refused burst (audited once)
    streams: dict[str, int] = field(default_factory=dict)  # user -> event streams open now
    # The runbook scheduler host ``serve`` runs (a broadcaster.runbooks.scheduler.Host), when one runs here.
    scheduler: Any = None
    node_id: str = ""  # this server's node id (metrics label; its background worker's lease owner)

    @property
    def config(self) -> Config:
        return self.app.config

    async def record(self, actor: str, action: str, /, **detail: Any) -> None:
        """Append one audit row, stamped with the service clock."""
        await self.audit.append(actor, action, detail, now=self.clock.now())


SERVICE = web.AppKey("service", Service)

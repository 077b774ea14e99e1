"""Prometheus metrics at ``/metrics``.

* ``broadcaster_deliveries_total{channel, mode, outcome}``: every recorded attempt outcome.
* ``broadcaster_attempt_latency_seconds{channel}``: request time of each real attempt.
* ``broadcaster_retries_total{channel, mode}``: attempts that will be tried again.
* ``broadcaster_queue_depth{channel, state}``: deliveries not yet done, read from the store at scrape time.
* ``broadcaster_fire_to_first_send_seconds{mode}``: outbox commit to the first accepted send of an alert.
* ``broadcaster_receipts_total{outcome}`` and ``broadcaster_fires_total{mode, state}``.
* ``broadcaster_failover_moves_total{from_channel, to_channel}``: SMS moved by failover (and back).
* ``broadcaster_circuit_state{channel}``: a failover channel's circuit: 0 closed, 1 half-open, 2 open.

Every series carries ``node``, the id of the process that reports it (``host:pid:token``, as
``broadcaster nodes`` lists it), so several nodes scraped together never collide; the queue
depth is the database's, reported by each node. Each service has its own registry, so several
apps in one process (tests) never share counters.
Dry-run outcomes are counted under ``mode="dry-run"``; their virtual-time latencies are not observed.
"""

from __future__ import annotations

import threading
from typing import Final, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from broadcaster.states import CircuitState, Outcome
from broadcaster.store.ports import Leases
from broadcaster.store.records import AttemptResult

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FIRST_SEND_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RETRIED: Final = frozenset({Outcome.RETRY, Outcome.UNKNOWN})
_SENT: Final = frozenset({Outcome.SENT, Outcome.RECONCILED})
_CIRCUIT_VALUE: Final = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
M = TypeVar("M", Counter, Histogram, Gauge)


class _NodeLabelled(Generic[M]):
    """A metric whose ``node`` label is fixed: ``.labels(channel=…)`` fills in the rest."""

    def __init__(self, metric: M, node: str) -> None:
        self.metric: M = metric
        self.node = node

    def labels(self, **labels: str) -> M:
        return self.metric.labels(node=self.node, **labels)


class Metrics:
    def __init__(self, leases: Leases | None = None, *, node: str = "") -> None:
        self.node = node
        self.registry = r = CollectorRegistry()
        self.deliveries = _NodeLabelled(Counter("broadcaster_deliveries", "Recorded delivery attempt outcomes",
                                                ["node", "channel", "mode", "outcome"], registry=r), node)
        self.latency = _NodeLabelled(Histogram("broadcaster_attempt_latency_seconds",
                                               "Time from request to answer per attempt", ["node", "channel"],
                                               buckets=_LATENCY_BUCKETS, registry=r), node)
        self.retries = _NodeLabelled(Counter("broadcaster_retries",
                                             "Attempts that will be tried again (retry or unknown)",
                                             ["node", "channel", "mode"], registry=r), node)
        self.first_send = _NodeLabelled(Histogram("broadcaster_fire_to_first_send_seconds",
                                                  "From the outbox commit to the first accepted send of an alert",
                                                  ["node", "mode"], buckets=_FIRST_SEND_BUCKETS, registry=r), node)
        self.receipts = _NodeLabelled(Counter("broadcaster_receipts", "Twilio status callbacks by outcome",
                                              ["node", "outcome"], registry=r), node)
        self.fires = _NodeLabelled(Counter("broadcaster_fires", "Alerts fired through the API",
                                           ["node", "mode", "state"], registry=r), node)
        self.moves = _NodeLabelled(Counter("broadcaster_failover_moves", "SMS moved to a fallback channel, or back",
                                           ["node", "from_channel", "to_channel"], registry=r), node)
        self.circuit = _NodeLabelled(Gauge("broadcaster_circuit_state",
                                           "A failover channel's circuit: 0 closed, 1 half-open, 2 open",
                                           ["node", "channel"], registry=r), node)
        self._leases = leases
        self._depth = Gauge("broadcaster_queue_depth", "Deliveries not yet done, by channel and state",
                            ["node", "channel", "state"], registry=r)

    async def render(self) -> bytes:
        """The exposition text; the queue depths are read from the store first (awaited, off the hot path)."""
        if self._leases is not None:
            depths = await self._leases.queue_depths()
            self._depth.clear()
            for channel, states in depths.items():
                for state, n in states.items():
                    self._depth.labels(node=self.node, channel=channel, state=state).set(n)
        return generate_latest(self.registry)

    def observer(self, mode: str) -> AlertObserver:
        return AlertObserver(self, mode)


class AlertObserver:
    """Sees one alert's outcomes (possibly from a worker thread); knows when it was committed."""

    def __init__(self, metrics: Metrics, mode: str) -> None:
        self.metrics = metrics
        self.mode = mode
        self.committed_at: float | None = None
        self._first_seen = False
        self._lock = threading.Lock()

    def committed(self, at: float) -> None:
        self.committed_at = at

    def moved(self, from_channel: str, to_channel: str, count: int) -> None:
        """Failover moved ``count`` deliveries (engine.failover calls it)."""
        self.metrics.moves.labels(from_channel=from_channel, to_channel=to_channel).inc(count)

    def circuit(self, channel: str, state: CircuitState) -> None:
        """A failover channel's circuit changed state (engine.failover calls it)."""
        self.metrics.circuit.labels(channel=channel).set(_CIRCUIT_VALUE[state])

    def __call__(self, channel: str, outcome: AttemptResult) -> None:
        m = self.metrics
        m.deliveries.labels(channel=channel, mode=self.mode, outcome=outcome.outcome).inc()
        if outcome.outcome in _RETRIED:
            m.retries.labels(channel=channel, mode=self.mode).inc()
        if self.mode == "dry-run" or outcome.outcome == Outcome.EXPIRED:
            return  # virtual time, or no request made
        m.latency.labels(channel=channel).observe(max(0.0, outcome.finished_at - outcome.started_at))
        if outcome.outcome in _SENT and self.committed_at is not None:
            with self._lock:
                first, self._first_seen = not self._first_seen, True
            if first:
                m.first_send.labels(mode=self.mode).observe(max(0.0, outcome.started_at - self.committed_at))


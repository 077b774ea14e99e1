"""The test-suite provider fakes, with arrival timestamps and without unbounded memory.

Each ``Bench*`` class is the fake from ``tests/fakes`` with four changes, and no
change to what goes over the wire:

* every send request is stamped with ``time.monotonic()`` the moment its handler
  starts (before the body is read), and keyed by the channel that sent it
  (X: path prefix, Telegram: ``chat_id``, Twilio: ``From``, webhook: path);
* the per-request ``Recorded`` copies and accepted-message lists are not kept,
  so 100,000 SMS cost a list of floats and a set of phone numbers, not
  hundreds of MB of dicts;
* latency can be drawn uniformly from ``jitter = (low, high)`` seconds;
* every *accepted* send request (a 2xx answer) is stamped again when its handler
  returns the answer, i.e. after the provider latency: the moment the provider
  "accepted" it (``Arrivals.answered``); other answers are only counted;
* ``BenchX`` serves any path prefix (``/{prefix}/2/tweets``) and skips the
  one-account duplicate-content check, because in the 180-channel scenario
  45 "accounts" post the same approved text; ``BenchGraph`` likewise forgets
  each post once made, so 20 Pages may post the same text (the fake's check is
  across all Pages, Meta's is per Page).

``BenchSmtp`` is the real aiosmtpd server of ``tests/fakes/smtp.py`` with the
same stamps: arrival at ``MAIL`` (the start of one message's transaction, keyed
by its envelope sender), acceptance when the ``DATA`` answer (250, after the
latency) is handed back.

``time.monotonic()`` is ``CLOCK_MONOTONIC`` on Linux: one system-wide clock, so
a stamp taken here (in the provider process) and one taken in the engine
process are directly comparable.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any, Final

import orjson
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.fakes.graph import FakeGraph
from tests.fakes.server import FakeServer, Recorded, Step, multipart_fields
from tests.fakes.smtp import FakeSmtp, _Handler
from tests.fakes.telegram import FakeTelegram, _params
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webhook import FakeWebhook
from tests.fakes.x import FakeX

GRAPH_TOKEN: Final = "EAAB-bench-PAGE-TOKEN-SECRET-0000"  # the bench's Graph API access token (env GRAPH_TOKEN)


class Arrivals:
    """Arrival stamps of send requests, overall and per sending channel."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.first_by_key: dict[str, float] = {}
        self.count_by_key: dict[str, int] = {}
        self.answered: list[float] = []  # accepted (2xx) send requests: when the answer left the handler
        self.refused = 0  # send requests answered with anything else

    def add(self, key: str, stamp: float) -> None:
        self.times.append(stamp)
        if key not in self.first_by_key:
            self.first_by_key[key] = stamp
            self.count_by_key[key] = 0
        self.count_by_key[key] += 1

    def summary(self, window_s: float | None = None) -> dict[str, Any]:
        times = self.times
        out: dict[str, Any] = {
            "count": len(times),
            "first": times[0] if times else None,
            "last": times[-1] if times else None,
            "keys": {k: [self.first_by_key[k], self.count_by_key[k]] for k in self.first_by_key},
            "answered": len(self.answered),
            "last_answer": max(self.answered) if self.answered else None,
            "refused": self.refused,
        }
        if window_s is not None:
            ordered = sorted(times)
            out["max_in_window"] = max_in_window(ordered, window_s)
            in_order = [b - a for a, b in itertools.pairwise(ordered)]
            gaps = sorted(in_order)
            if gaps:
                pick = {"min": 0.0, "p1": 0.01, "p50": 0.5, "p99": 0.99, "max": 1.0}
                out["gaps_ms"] = {k: gaps[min(len(gaps) - 1, int(q * len(gaps)))] * 1000 for k, q in pick.items()}
                out["max_gap_after"] = in_order.index(gaps[-1]) + 1  # arrivals before the longest gap
        return out


def max_in_window(times: list[float], window_s: float) -> int:
    """The most arrivals in any half-open window ``[t, t + window_s)``."""
    best = 0
    lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class BenchMixin(FakeServer):
    """Lean recording and jittered latency for any FakeServer subclass."""

    jitter: tuple[float, float] | None = None

    def bench_init(self) -> None:
        self.arrivals = Arrivals()
        self.jitter = None

        @web.middleware
        async def stamp_answer(request: web.Request, handler: Any) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            if self.is_send(request):
                if 200 <= response.status < 300:
                    self.arrivals.answered.append(time.monotonic())
                else:
                    self.arrivals.refused += 1
            return response

        self.app.middlewares.append(stamp_answer)

    def channel_key(self, request: web.Request, rec: Recorded) -> str:
        return request.path

    def is_send(self, request: web.Request) -> bool:
        return request.method == "POST"

    async def record(self, request: web.Request) -> Recorded:
        stamp = time.monotonic()
        body = await request.read()
        form: dict[str, str] = {}
        parsed_json: Any = None
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        elif request.content_type == "application/json" and body:
            parsed_json = orjson.loads(body)
        rec = Recorded(request.method, request.path, dict(request.query), form, parsed_json,
                       dict(request.headers), body)
        if self.is_send(request):
            self.arrivals.add(self.channel_key(request, rec), stamp)
        return rec  # not appended to self.requests: memory stays flat

    async def provider_latency(self) -> None:
        if self.jitter is not None:
            await asyncio.sleep(random.uniform(*self.jitter))
        elif self.latency:
            await asyncio.sleep(self.latency)

    def reset(self, latency: float, jitter: tuple[float, float] | None) -> None:
        self.arrivals = Arrivals()
        self.latency = latency
        self.jitter = jitter
        self.steps.clear()
        self.requests.clear()

    def stats(self) -> dict[str, Any]:
        return {}


class BenchTwilio(BenchMixin, FakeTwilio):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bench_init()
        self.accepted = 0
        self.duplicates = 0
        self.to_seen: set[str] = set()

    def channel_key(self, request: web.Request, rec: Recorded) -> str:
        return rec.form.get("From") or rec.form.get("MessagingServiceSid") or "?"

    def _store(self, form: dict[str, str], *, created: Any = None) -> dict[str, Any]:
        message = super()._store(form, created=created)
        # Keep only a count and the set of phones: the SDK still gets a full resource back.
        self.messages.pop()
        self._by_to.pop(str(message["to"]), None)
        self._by_sid.pop(message["sid"], None)
        self.accepted += 1
        to = str(message["to"])
        if to in self.to_seen:
            self.duplicates += 1
        else:
            self.to_seen.add(to)
        return message

    def reset(self, latency: float, jitter: tuple[float, float] | None) -> None:
        super().reset(latency, jitter)
        self.accepted = self.duplicates = 0
        self.to_seen = set()

    def stats(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "distinct_to": len(self.to_seen), "duplicates": self.duplicates}


class BenchTelegram(BenchMixin, FakeTelegram):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bench_init()

    def channel_key(self, request: web.Request, rec: Recorded) -> str:
        return str(_params(rec, multipart_fields(request, rec)).get("chat_id"))

    def is_send(self, request: web.Request) -> bool:
        return request.path.endswith("/sendMessage")

    def reset(self, latency: float, jitter: tuple[float, float] | None) -> None:
        super().reset(latency, jitter)
        self.sent.clear()

    def stats(self) -> dict[str, Any]:
        return {"accepted": len(self.sent)}


class BenchWebhook(BenchMixin, FakeWebhook):
    def __init__(self, secret: str, **kwargs: Any) -> None:
        super().__init__(secret, **kwargs)
        self.bench_init()

    def reset(self, latency: float, jitter: tuple[float, float] | None) -> None:
        super().reset(latency, jitter)
        self.deliveries.clear()

    def stats(self) -> dict[str, Any]:
        return {"accepted": len(self.deliveries), "bad_signatures": sum(not d.signature_ok for d in self.deliveries)}


class BenchX(BenchMixin, FakeX):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bench_init()
        self.accepted = 0
        self.app.router.add_post("/{prefix}/2/tweets", self._create_tweet)

    def channel_key(self, request: web.Request, rec: Recorded) -> str:
        return request.path.removesuffix("/2/tweets") or "/"

    async def _create_tweet(self, request: web.Request) -> web.Response:
        """FakeX's handler without the duplicate-content check (many accounts, one server)."""
        recorded = await self.record(request)
        body = recorded.json if isinstance(recorded.json, dict) else {}
        await self.provider_latency()
        step = self.next_step()
        if step is not None:
            return await self.answer(step)
        if not request.headers.get("Authorization", "").startswith("OAuth "):
            return await self.answer(self.unauthorized())
        if not isinstance(body.get("text"), str) or not body["text"]:
            return await self.answer(self.bad_request())
        return await self.answer(Step(201, {"data": self._accept(body)}))

    def _accept(self, body: dict[str, Any]) -> dict[str, Any]:
        data = super()._accept(body)
        self.tweets.clear()
        self.accepted += 1
        return data

    def reset(self, latency: float, jitter: tuple[float, float] | None) -> None:
        super().reset(latency, jitter)
        self.accepted = 0

    def stats(self) -> dict[str, Any]:
        return {"accepted": self.accepted}


class BenchGraph(BenchMixin, FakeGraph):
    """Facebook Pages or Instagram accounts; every POST is a send request, keyed by its node (Page or account)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bench_init()
        self.accepted = 0

    def channel_key(self, request: web.Request, rec: Recorded) -> str:
        return request.match_info.get("node", request.path)

    async def _make(self, method: str, node: str, edge: str, params: dict[str, Any]) -> dict[str, Any] | None:
        made = await super()._make(method, node, edge, params)
        # Forget what was posted: many Pages share one fake (its duplicate check spans them all) and
        # memory stays flat. A container is kept until it is published, as FakeGraph does.
        self.posts.clear()
        self.comments.clear()
        self.media.clear()
        if made is not None:
            self.accepted += 1
        return made

    def reset(self, latency: float, jitter: tuple[float, float] | None) -> None:
        super().reset(latency, jitter)
        self.accepted = 0
        self.containers.clear()

    def stats(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "open_containers": len(self.containers),
                "tokens_in_urls": len(self.tokens_in_urls)}


class _BenchSmtpHandler(_Handler):
    """FakeSmtp's hooks with arrival (``MAIL``) and acceptance (the ``DATA`` answer) stamps."""

    fake: BenchSmtp

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        self.fake.arrivals.add(address, time.monotonic())
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("2"):
            self.fake.arrivals.answered.append(time.monotonic())
        else:
            self.fake.arrivals.refused += 1
        return answer


class BenchSmtp(FakeSmtp):
    """A real aiosmtpd server (plain SMTP, AUTH required) with the bench's stamps and latency at ``DATA``.

    ``latency`` is read once per message (FakeSmtp sleeps it before answering ``DATA``): a fixed value,
    or a uniform draw from ``jitter``.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.jitter: tuple[float, float] | None = None
        self._latency = 0.0
        super().__init__(**kwargs)
        self.arrivals = Arrivals()

    @property
    def latency(self) -> float:
        return random.uniform(*self.jitter) if self.jitter is not None else self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._latency = value

    def _handler(self) -> _Handler:
        return _BenchSmtpHandler(self)

    def reset(self, latency: float, jitter: tuple[float, float] | None) -> None:
        self.arrivals = Arrivals()
        self.latency = latency
        self.jitter = jitter
        self.steps.clear()
        self.requests.clear()
        self.messages.clear()
        self.connections = 0
        self.logins.clear()

    def stats(self) -> dict[str, Any]:
        return {"accepted": len(self.messages), "connections": self.connections, "logins": len(self.logins)}

"""``broadcaster serve`` in this process: scenarios 14 and 15 of ``python -m bench``.

The server is built exactly as ``broadcaster serve`` builds it (``cli/service_cmd.py``):
``open_app`` on the server's loop, ``make_app(app, background=True)`` (so the
runbook scheduler host and the background worker run too), an aiohttp
``AppRunner`` and a ``TCPSite`` on 127.0.0.1 (port 0). The only difference is
where the loop runs: on a thread of this process (:class:`Server`), so that the
benchmark's main thread can drive it with plain blocking HTTP requests
(``urllib``) and read the fakes (a pipe to ``bench.provider_proc``) while a task
on the server's own loop samples its lag. The main thread spends that time
blocked on sockets and ``time.sleep``, so it takes next to nothing from the
server's share of the GIL.

Users are created with ``broadcaster.app.users.Users(store.db).add`` (an
``officer`` who fires, a ``viewer`` who previews); each token is used once with
``GET /api/me`` before anything is timed, so the one-off scrypt check of a new
token (cached afterwards, as for a console user who has logged in) is not in the
figures.

**Loop lag** (:class:`LagProbe`): a task on the server loop sleeps 10 ms again and
again; each wake-up records ``lag = time it actually slept - 10 ms``. The figures
come from a run with nothing else added. When they miss a bound, a second run
adds instrumentation on the loop thread (see :class:`LagProbe`) to say what ran
while the loop was late.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web

from bench.harness import (
    TEMPLATE,
    ProviderProcess,
    mixed_channels,
    sms_channel,
    write_channels,
    write_recipients,
)
from bench.nodes import Cluster, CpuMeter
from bench.report import add, heading, say
from broadcaster.app.context import App, open_app
from broadcaster.app.users import Users
from broadcaster.service.app import make_app
from broadcaster.service.state import Limits

T = TypeVar("T")
KINDS = ("x", "telegram", "sms", "webhook")
SERVE_BOUND_S = 0.350
LAG_P99_BOUND_S = 0.050
LAG_MAX_BOUND_S = 0.100
LAG_INTERVAL_S = 0.010
STALL_S = 0.025  # a wake-up later than this is diagnosed
WATCH_EVERY_S = 0.005
NO_PROGRESS_S = 60.0


# --- the server, on a thread of this process --------------------------------------------


class Server:
    """``broadcaster serve`` on its own loop and thread; ``url``, ``officer`` and ``viewer`` tokens."""

    def __init__(self, config: Path, database: str, *, limits: Limits | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="bench-serve-loop", daemon=True)
        self.thread.start()
        self.app: App | None = None
        self._app_cm: Any = None
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.tokens: dict[str, str] = {}
        try:
            self.call(self._start(config, database, limits))
        except BaseException:
            self.close()
            raise

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 600.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, config: Path, database: str, limits: Limits | None) -> None:
        self._app_cm = open_app(str(config), database, name="bench serve")
        self.app = await self._app_cm.__aenter__()
        users = Users(self.app.store.db)
        for name, role in (("bench-officer", "officer"), ("bench-viewer", "viewer")):
            self.tokens[role] = (await users.add(name, role)).reveal()
        self.runner = web.AppRunner(make_app(self.app, limits=limits, background=True), handle_signals=False,
                                    access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self._app_cm is not None:
            await self._app_cm.__aexit__(None, None, None)

    async def state_counts(self, alert_id: str) -> Counter[str]:
        assert self.app is not None
        counts: Counter[str] = Counter()
        for per in (await self.app.store.alerts.state_counts(alert_id)).values():
            counts.update({str(k): v for k, v in per.items()})
        return counts

    def close(self) -> None:
        if self.loop.is_running():
            with contextlib.suppress(Exception):
                self.call(self._stop(), timeout=120)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        if not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP, from the main thread ---------------------------------------------------

    def request(self, method: str, path: str, role: str, body: Any = None) -> tuple[int, Any]:
        data = orjson.dumps(body) if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.tokens[role]}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as answer:
                return answer.status, orjson.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read() or b"null")

    def warm_tokens(self) -> None:
        for role in self.tokens:
            status, body = self.request("GET", "/api/me", role)
            if status != 200:
                raise RuntimeError(f"GET /api/me as {role}: {status} {body}")


def fire_body(selection: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"template": TEMPLATE, "use_examples": True, "mode": "live", "confirm": TEMPLATE}
    if selection:
        body["channels"] = selection
    return body


def wait_answered(providers: ProviderProcess, expected: int, *, every: float = 0.01) -> None:
    """Until the fakes have accepted ``expected`` send requests in all (fails if nothing moves for a minute)."""
    last, moved = -1, time.monotonic()
    while (seen := sum(providers.answered().values())) < expected:
        if seen != last:
            last, moved = seen, time.monotonic()
        elif time.monotonic() - moved > NO_PROGRESS_S:
            raise RuntimeError(f"the fakes accepted {seen} of {expected} requests and nothing more for "
                               f"{NO_PROGRESS_S:.0f} s")
        time.sleep(every)


def wait_recorded(server: Server, alert_id: str, expected: int) -> Counter[str]:
    """Until every delivery of the alert has an end state in the server's store."""
    deadline = time.monotonic() + NO_PROGRESS_S
    while True:
        counts = server.call(server.state_counts(alert_id))
        if sum(counts.values()) == expected and not {"pending", "sending", "unknown"} & set(counts):
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"alert {alert_id} never finished: {dict(counts)}")
        time.sleep(0.02)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# --- 14. POST /api/alerts -> every request accepted --------------------------------------


def scenario_serve_fanout(providers: ProviderProcess, work: Path, per_kind: int, fires: int, latency: float) -> None:
    n = per_kind
    expected = 2 * n + 3 * n  # X posts ar + en; Telegram combined; webhook; one SMS per list
    heading("14", f"serve: POST /api/alerts (live) -> every one of the {expected} requests accepted, providers "
                  f"answering in {latency * 1000:.0f} ms",
            f"{n} each of X (ar + en), Telegram (combined), webhook, one-recipient SMS: scenario 2's channels.\n"
            "`serve` in this process (open_app, make_app(background=True), AppRunner + TCPSite on 127.0.0.1, SQLite);\n"
            "an officer's POST from the main thread; from just before the POST to the last acceptance at the fakes\n"
            f"(their answer stamp). {fires} fires; the first is the server's first fire (cold), the rest warm")
    directory = work / "serve-fanout"
    config = write_channels(directory, mixed_channels(directory, providers.urls, x=n, telegram=n, webhook=n, sms=n),
                            database="var/serve.db")
    rows: list[dict[str, float]] = []
    limits = Limits(fire_rate_per_second=1.0, fire_burst=max(5, fires + 1))
    with Server(config, str(directory / "var" / "serve.db"), limits=limits) as server:
        server.warm_tokens()
        for _ in range(fires):
            providers.reset(latency=latency)
            start = time.monotonic()
            status, body = server.request("POST", "/api/alerts", "officer", fire_body())
            answered_at = time.monotonic()
            if status != 202:
                raise RuntimeError(f"POST /api/alerts: {status} {body}")
            wait_answered(providers, expected)
            stats = providers.stats()
            counts = wait_recorded(server, body["alert_id"], expected)
            if counts != Counter({"sent": expected}):
                raise RuntimeError(f"alert {body['alert_id']}: {dict(counts)}")
            rows.append({
                "post": answered_at - start,
                "first_request": min(stats[k]["first"] for k in KINDS) - start,
                "last_request": max(stats[k]["last"] for k in KINDS) - start,
                "accepted": max(stats[k]["last_answer"] for k in KINDS) - start,
            })
            providers.reset()
            time.sleep(0.3)
    say(f"    every fire: {expected} requests accepted at the fakes, {expected} deliveries `sent` in the store")
    say(f"    {'fire':>5} {'POST answered (202)':>20} {'first request':>14} {'last request':>13} {'all accepted':>13}")
    for i, r in enumerate(rows, 1):
        say(f"    {i:>5} {r['post'] * 1000:>20.0f} {r['first_request'] * 1000:>14.0f} "
            f"{r['last_request'] * 1000:>13.0f} {r['accepted'] * 1000:>13.0f}")
    cold, warm = rows[0], rows[1:] or rows
    bound = f"<= {ms(SERVE_BOUND_S)}"
    add("14 serve fan-out", "POST -> all accepted, first fire (cold)", ms(cold["accepted"]), bound,
        cold["accepted"] <= SERVE_BOUND_S)
    worst = max(r["accepted"] for r in warm)
    add("14 serve fan-out", "POST -> all accepted, warm max", ms(worst), bound, worst <= SERVE_BOUND_S)
    add("14 serve fan-out", "  POST -> all accepted, warm median", ms(statistics.median(r["accepted"] for r in warm)),
        "", None)
    for key, label in (("post", "POST -> 202 answered (outbox committed)"),
                       ("first_request", "POST -> first request at the fakes"),
                       ("last_request", "POST -> last request arrives")):
        add("14 serve fan-out", f"  {label}, cold / warm median",
            f"{cold[key] * 1000:.0f} / {statistics.median(r[key] for r in warm) * 1000:.0f} ms", "", None)


# --- 15. loop lag while a 100,000-SMS fan-out and a 200,000-row preview run --------------


@dataclass(frozen=True)
class Sample:
    """One wake-up of the lag task; with instrumentation, what the loop ran since the previous one."""

    stamp: float  # time.monotonic() at the wake-up
    lag: float  # seconds later than asked
    callbacks: int = 0  # callbacks (task steps, timers, I/O) the loop ran in between
    busy: float = 0.0  # wall seconds spent inside them
    busy_cpu: float = 0.0  # CPU seconds the loop thread used inside them (the rest it waited, e.g. for the GIL)
    longest: float = 0.0  # the longest one (wall)
    longest_cpu: float = 0.0  # the loop thread's CPU seconds in it
    longest_name: str = "-"  # what it was (a task's coroutine, or the callback)
    gc: float = 0.0  # seconds of cyclic garbage collection in between (any thread: it holds the GIL)
    gc_longest: float = 0.0  # the longest collection
    gc_generation: int = -1  # its generation (-1: none)
    others: tuple[str, ...] = ()  # late wake-ups only: what the server's other busy threads were running


@dataclass
class Stall:
    """Stack samples the watchdog thread took while the loop was late (``--lag-stacks`` only)."""

    since: float  # when the lag task last woke before the stall
    loop_stacks: list[tuple[str, ...]] = field(default_factory=list)


_IDLE_FILES = ("threading.py", "concurrent/futures/thread.py", "queue.py", "selectors.py")


def _frames(frame: Any) -> tuple[str, ...]:
    """The stack, outermost first, without reading source lines (cheap enough for every 5 ms)."""
    out: list[str] = []
    while frame is not None:
        code = frame.f_code
        out.append(f"{_short(code.co_filename)}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return tuple(reversed(out))


def _short(filename: str) -> str:
    for marker in ("/broadcaster/", "/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename[filename.index(marker) + 1:]
    return filename


def _callback_name(handle: asyncio.Handle | None) -> str:
    if handle is None:
        return "-"
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', repr(coro))}"
    return getattr(callback, "__qualname__", None) or type(callback).__name__


def _bench_threads() -> set[int | None]:
    """This benchmark's own threads (the main thread, the viewer, the watchdog) and the server's loop thread."""
    return {t.ident for t in threading.enumerate() if t.name.startswith("bench-") or t is threading.main_thread()}


def _busy_threads(skip: set[int | None]) -> tuple[str, ...]:
    """The innermost project (or library) frames of every other thread that is not idle."""
    found = []
    for tid, frame in sys._current_frames().items():
        if tid in skip or frame.f_code.co_filename.endswith(_IDLE_FILES):
            continue
        stack = _frames(frame)
        ours = [f for f in stack if f.startswith("broadcaster/")]
        found.append(" > ".join([*ours[-2:], stack[-1]] if ours and ours[-1] != stack[-1] else ours[-2:] or
                                [stack[-1]]))
    return tuple(found)


class LagProbe:
    """Event-loop lag of ``server``'s loop: a task that sleeps LAG_INTERVAL_S again and again.

    ``instrument=True`` (the diagnosis run) adds, all on the server's loop thread:

    * ``asyncio.Handle._run`` wrapped to time each callback on that thread (wall, and the
      thread's own CPU with ``time.thread_time()``), so each lag sample says how many
      callbacks ran since the previous one, how long, and which was the longest. Wall time
      in a callback without CPU is time the thread was off-CPU: waiting for the GIL, or in
      a blocking call;
    * a ``gc.callbacks`` hook timing each cyclic collection (it holds the GIL, whichever
      thread runs it);
    * at every wake-up later than STALL_S, the innermost frames of the server's other busy
      threads (``sys._current_frames()``): what held the GIL meanwhile.

    ``stacks=True`` also starts a watchdog *thread* that samples the loop thread's stack every
    WATCH_EVERY_S while the loop is late. Measured: it changes what it measures (its own GIL
    requests break up GIL convoys and made the worst lag several times smaller), so it is only
    for finding the line of a blocking call, never for the figures.
    """

    def __init__(self, server: Server, *, instrument: bool = False, stacks: bool = False) -> None:
        self.server = server
        self.instrument = instrument
        self.stacks = stacks
        self.samples: list[Sample] = []
        self.stalls: list[Stall] = []
        self.gc_pauses: list[tuple[float, int, float]] = []  # (stamp, generation, seconds), any thread
        self.last_wake = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="bench-lag-watchdog", daemon=True)
        self._window: list[Any] = [0, 0.0, 0.0, 0.0, 0.0, None]  # callbacks, wall, CPU, longest wall, its CPU, it
        self._gc_window: list[Any] = [0.0, 0.0, -1]  # seconds, longest, its generation
        self._gc_began = 0.0
        self._original_run: Any = None

    async def _sample(self) -> None:
        while True:
            before = time.monotonic()
            self.last_wake = before
            await asyncio.sleep(LAG_INTERVAL_S)
            woke = time.monotonic()
            lag = woke - before - LAG_INTERVAL_S
            if not self.instrument:
                self.samples.append(Sample(woke, lag))
                continue
            count, busy, busy_cpu, longest, longest_cpu, handle = self._window
            gc_s, gc_longest, gc_generation = self._gc_window
            self._window = [0, 0.0, 0.0, 0.0, 0.0, None]
            self._gc_window = [0.0, 0.0, -1]
            others = _busy_threads(_bench_threads()) if lag > STALL_S else ()
            self.samples.append(Sample(woke, lag, count, busy, busy_cpu, longest, longest_cpu,
                                       _callback_name(handle), gc_s, gc_longest, gc_generation, others))

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_began
        generation = int(info.get("generation", -1))
        self.gc_pauses.append((time.monotonic(), generation, took))
        window = self._gc_window
        window[0] += took
        if took > window[1]:
            window[1], window[2] = took, generation

    def _install(self) -> None:
        original = self._original_run = asyncio.Handle._run
        loop_thread = self.server.thread.ident
        probe = self

        def timed_run(handle: asyncio.Handle) -> None:
            if threading.get_ident() != loop_thread:
                original(handle)
                return
            began, began_cpu = time.perf_counter(), time.thread_time()
            try:
                original(handle)
            finally:
                took, cpu = time.perf_counter() - began, time.thread_time() - began_cpu
                window = probe._window
                window[0] += 1
                window[1] += took
                window[2] += cpu
                if took > window[3]:
                    window[3], window[4], window[5] = took, cpu, handle

        asyncio.Handle._run = timed_run  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._on_gc)

    async def _start_task(self) -> None:
        if self.instrument:
            self._install()
        self._task = asyncio.get_running_loop().create_task(self._sample(), name="bench-lag-probe")

    async def _stop_task(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._original_run is not None:
            asyncio.Handle._run = self._original_run  # type: ignore[method-assign]
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def _watch(self) -> None:
        loop_id = self.server.thread.ident or 0
        current: Stall | None = None
        while not self._stop.wait(WATCH_EVERY_S):
            since = self.last_wake
            if time.monotonic() - since <= LAG_INTERVAL_S + STALL_S:
                continue
            if current is None or current.since != since:
                current = Stall(since)
                self.stalls.append(current)
            frame = sys._current_frames().get(loop_id)
            if frame is not None:
                current.loop_stacks.append(_frames(frame))

    def start(self) -> None:
        self.server.call(self._start_task())
        if self.stacks:
            self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog.is_alive():
            self._watchdog.join(timeout=5)
        self.server.call(self._stop_task())

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.stamp <= end]

    def lags(self, start: float, end: float) -> list[float]:
        return sorted(s.lag for s in self.between(start, end))


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def lag_line(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"{len(values)} samples: p50 {quantile(values, 0.5) * 1000:.1f} ms, "
            f"p99 {quantile(values, 0.99) * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms")


def project_frames(stack: tuple[str, ...], keep: int = 4) -> str:
    """The innermost ``keep`` frames under broadcaster/ (else the innermost frames), innermost last."""
    ours = [f for f in stack if f.startswith("broadcaster/")]
    picked = ours[-keep:] if ours else list(stack[-keep:])
    tail = stack[-1]
    if tail not in picked:
        picked.append(tail)
    return " > ".join(picked)


@dataclass
class LagRun:
    """One run of scenario 15: what the fire, the preview and the probe saw."""

    sms: int
    preview_rows: int
    probe: LagProbe
    idle: tuple[float, float]
    start: float  # just before the fire's POST
    committed: float  # its 202
    sent_at_fake: float
    done: float  # every delivery recorded
    preview: tuple[float, float]
    previewed: int
    counts: Counter[str]
    fake: dict[str, Any]
    meter: CpuMeter
    tracked: int  # objects the cyclic GC tracked before the fire
    frozen: int  # of which frozen (the gc.freeze what-if)

    def phase(self, stamp: float) -> str:
        if self.preview[0] <= stamp <= self.preview[1]:
            return "preview"
        return "commit" if self.start <= stamp <= self.committed else "sending"

    def lags(self) -> dict[str, list[float]]:
        samples = self.probe.between(self.start, self.done)

        def of(phase: str) -> list[float]:
            return sorted(s.lag for s in samples if self.phase(s.stamp) == phase)

        return {
            "whole window": sorted(s.lag for s in samples),
            "idle, before the fire": self.probe.lags(*self.idle),
            "POST /api/alerts (plan + outbox commit)": of("commit"),
            "while the preview ran": of("preview"),
            "sending, preview not running": of("sending"),
        }

    @property
    def ok(self) -> bool:
        return (self.counts == Counter({"sent": self.sms}) and self.fake["answered"] == self.sms
                and self.fake["duplicates"] == 0 and self.previewed == self.preview_rows)


def lag_run(providers: ProviderProcess, cluster: Cluster, directory: Path, sms: int, preview_rows: int, rate: float,
            jitter: tuple[float, float], *, instrument: bool, stacks: bool, freeze: bool = False) -> LagRun:
    """Start serve on a fresh PostgreSQL database, fire, preview 1 s after the 202, wait until all recorded.

    Both recipient lists are new files in a new folder, so this process has never validated them
    (``broadcaster.recipients`` keeps a per-process index of lists it has checked, by path, size and mtime).
    """
    directory.mkdir(parents=True)
    write_recipients(directory / "residents.csv", sms)
    write_recipients(directory / "preview.csv", preview_rows, start=sms + 1)
    database = cluster.fresh()
    config = write_channels(directory, [
        sms_channel("sms-residents", providers.urls["sms"], "residents.csv", rate),
        sms_channel("sms-preview", providers.urls["sms"], "preview.csv", rate, sender="+15005550007"),
    ], database=database)
    with Server(config, database) as server:
        server.warm_tokens()
        if freeze:
            gc.freeze()  # what-if: every object the started server holds leaves the GC's generations
        frozen = gc.get_freeze_count()
        tracked = len(gc.get_objects()) + frozen
        probe = LagProbe(server, instrument=instrument, stacks=stacks)
        probe.start()
        try:
            time.sleep(1.0)
            idle = (time.monotonic() - 1.0, time.monotonic())
            providers.reset(jitter=jitter)
            loop_thread = server.thread.native_id
            meter = CpuMeter({
                "serve loop thread": lambda: [loop_thread] if loop_thread else [],
                "bench": lambda: [],  # this whole process (os.times): the server and every thread of it
                "fake providers": lambda: [providers.pid],
                "postgres": cluster.pids,
            })
            meter.start()
            start = time.monotonic()
            status, body = server.request("POST", "/api/alerts", "officer", fire_body(["sms-residents"]))
            committed = time.monotonic()
            if status != 202:
                raise RuntimeError(f"POST /api/alerts: {status} {body}")
            preview: dict[str, Any] = {}

            def viewer() -> None:
                time.sleep(max(0.0, committed + 1.0 - time.monotonic()))
                preview["start"] = time.monotonic()
                preview["status"], preview["body"] = server.request(
                    "POST", "/api/preview", "viewer",
                    {"template": TEMPLATE, "use_examples": True, "channels": ["sms-preview"]})
                preview["end"] = time.monotonic()

            looker = threading.Thread(target=viewer, name="bench-viewer")
            looker.start()
            wait_answered(providers, sms, every=0.05)
            sent_at_fake = time.monotonic()
            looker.join()
            counts = wait_recorded(server, body["alert_id"], sms)
            done = time.monotonic()
            meter.stop()
        finally:
            probe.stop()
        fake = providers.stats()["sms"]
        providers.reset()
    if freeze:
        gc.unfreeze()
    if preview.get("status") != 200:
        raise RuntimeError(f"POST /api/preview: {preview.get('status')} {preview.get('body')}")
    previewed = sum(m["recipients"] for m in preview["body"]["messages"] if m["channel"] == "sms-preview")
    return LagRun(sms, preview_rows, probe, idle, start, committed, sent_at_fake, done,
                  (preview["start"], preview["end"]), previewed, counts, fake, meter, tracked, frozen)


def describe(run: LagRun) -> None:
    say(f"    fire: POST answered 202 after {run.committed - run.start:.2f} s (plan + outbox commit of {run.sms:,}); "
        f"every request accepted at the fake {run.sent_at_fake - run.committed:.2f} s later, all recorded "
        f"{run.done - run.committed:.2f} s after the 202; states {dict(run.counts)}; fake {run.fake['count']:,} "
        f"requests, {run.fake['duplicates']} duplicates")
    say(f"    preview: {run.previewed:,} recipients counted in {run.preview[1] - run.preview[0]:.2f} s, started "
        f"{run.preview[0] - run.committed:.2f} s after the 202")
    for label, values in run.lags().items():
        say(f"    lag, {label}: {lag_line(values)}")
    for line in run.meter.lines():
        say(f"    {line}")


def diagnose(run: LagRun, top: int = 8) -> None:
    probe = run.probe
    frozen = run.frozen
    say(f"    objects tracked by the cyclic GC before the fire: {run.tracked:,}"
        + (f", {frozen:,} of them frozen (gc.freeze: no collection walks them)" if frozen else
           " (what each generation-2 collection walks)"))
    late = [s for s in probe.between(run.start, run.done) if s.lag > STALL_S]
    if not late:
        say(f"    the loop was never more than {STALL_S * 1000:.0f} ms late")
        return
    single = [s for s in late if s.longest > STALL_S]
    say(f"    {len(late)} wake-ups more than {STALL_S * 1000:.0f} ms late (by phase: "
        + ", ".join(f"{k} {n}" for k, n in Counter(run.phase(s.stamp) for s in late).items())
        + f"); in {len(single)} one callback alone took over {STALL_S * 1000:.0f} ms of wall time. The worst "
        "(wall = time inside callbacks, CPU = the loop thread's own CPU in them):")
    say(f"      {'lag':>6} {'callbacks':>9} {'wall':>6} {'CPU':>6} {'longest':>8} {'its CPU':>7} {'GC':>14}  "
        f"{'phase':<8} longest callback")
    for s in sorted(late, key=lambda s: s.lag, reverse=True)[:top]:
        collected = f"{s.gc * 1000:.0f}ms (gen {s.gc_generation})" if s.gc_generation >= 0 else "-"
        say(f"      {s.lag * 1000:>4.0f}ms {s.callbacks:>9} {s.busy * 1000:>4.0f}ms {s.busy_cpu * 1000:>4.0f}ms "
            f"{s.longest * 1000:>6.1f}ms {s.longest_cpu * 1000:>5.1f}ms {collected:>14}  {run.phase(s.stamp):<8} "
            f"{s.longest_name}")
    for phase in ("commit", "preview", "sending"):
        these = [s for s in late if run.phase(s.stamp) == phase]
        if not these:
            continue
        wall, cpu = sum(s.busy for s in these), sum(s.busy_cpu for s in these)
        in_gc = sum(s.gc for s in these)
        busy: Counter[str] = Counter(o for s in these for o in s.others)
        say(f"    {phase}: {len(these)} late wake-ups, {sum(s.lag for s in these) * 1000:.0f} ms of lag in all; their "
            f"callbacks ran {wall * 1000:.0f} ms (wall) on {cpu * 1000:.0f} ms of loop-thread CPU, so the loop "
            f"thread was off-CPU {(wall - cpu) * 1000:.0f} ms inside callbacks; cyclic GC {in_gc * 1000:.0f} ms")
        if busy:
            say(f"      other server threads busy at those wake-ups ({sum(busy.values())} sightings): "
                + "; ".join(f"{text} x{count}" for text, count in busy.most_common(3)))
    for generation in sorted({g for _, g, _ in probe.gc_pauses}):
        pauses = sorted(t for stamp, g, t in probe.gc_pauses if g == generation and run.start <= stamp <= run.done)
        if pauses:
            say(f"    GC generation {generation}: {len(pauses)} collections in the window, median "
                f"{statistics.median(pauses) * 1000:.1f} ms, max {pauses[-1] * 1000:.1f} ms, "
                f"total {sum(pauses) * 1000:.0f} ms")
    names: Counter[str] = Counter(s.longest_name for s in late)
    say("    the longest callback of each late wake-up, by name: "
        + "; ".join(f"{name} x{n}" for name, n in names.most_common(6)))
    where: Counter[str] = Counter()
    for stall in probe.stalls:
        if run.start <= stall.since <= run.done:
            for stack in stall.loop_stacks:
                where[project_frames(stack, keep=2)] += 1
    if where:
        say(f"    --lag-stacks: the loop thread's stack while over {STALL_S * 1000:.0f} ms late (every "
            f"{WATCH_EVERY_S * 1000:.0f} ms, innermost last):")
        for text, count in where.most_common(8):
            say(f"      {count:>4} x {text}")


def scenario_serve_lag(providers: ProviderProcess, cluster: Cluster, work: Path, sms: int, preview_rows: int,
                       rate: float, jitter: tuple[float, float], *, diagnosis: str = "auto",
                       freeze: bool = False) -> None:
    """``diagnosis``: "auto" (an instrumented second run when a bound is missed), "always", "never", "stacks".

    ``freeze`` is a what-if, never part of a default run: ``gc.freeze()`` once the server has started.
    """
    scenario = "15 what-if" if freeze else "15 serve lag"
    heading("15", ("WHAT-IF gc.freeze() after start-up: " if freeze else "")
            + f"serve: event-loop lag while it sends {sms:,} SMS live (PostgreSQL) and a viewer previews a "
            f"{preview_rows:,}-row list",
            "`serve` in this process on PostgreSQL (make_app(background=True): its background worker runs too);\n"
            f"POST /api/alerts live to one SMS channel of {sms:,} recipients (rate_per_second = {rate:.0f}, fake "
            f"latency uniform {jitter[0] * 1000:.0f}-{jitter[1] * 1000:.0f} ms);\n"
            "1 s after its 202, a viewer's POST /api/preview of the same template for a channel whose list has "
            f"{preview_rows:,} rows. Both lists are new to the server (never validated by it before).\n"
            f"A task on the server loop sleeps {LAG_INTERVAL_S * 1000:.0f} ms in a loop; lag = how late it wakes. "
            "Window: just before the fire's POST -> every delivery recorded.\n"
            "The figures come from a run with nothing else added to the server; a miss is diagnosed by a second,\n"
            "instrumented run (callback timer, GC hook, other threads' frames), whose own lag is shown as info")
    if not cluster.available():
        say(f"    skipped: no PostgreSQL server ({cluster.error})")
        return
    say(f"    {cluster.describe()}")
    directory = work / "serve-lag"
    run = lag_run(providers, cluster, directory / "run", sms, preview_rows, rate, jitter, instrument=False,
                  stacks=False, freeze=freeze)
    describe(run)
    lags = run.lags()
    whole = lags["whole window"]
    p99, worst = quantile(whole, 0.99), whole[-1]
    add(scenario, "loop lag p99 (fan-out + preview)", f"{p99 * 1000:.1f} ms", f"<= {ms(LAG_P99_BOUND_S)}",
        p99 <= LAG_P99_BOUND_S)
    add(scenario, "loop lag max (fan-out + preview)", f"{worst * 1000:.1f} ms", f"<= {ms(LAG_MAX_BOUND_S)}",
        worst <= LAG_MAX_BOUND_S)
    add(scenario, "  loop lag p50", f"{quantile(whole, 0.5) * 1000:.1f} ms", "", None)
    for label, values in lags.items():
        if values and label != "whole window":
            add(scenario, f"  p99 / max: {label}",
                f"{quantile(values, 0.99) * 1000:.0f} / {values[-1] * 1000:.0f} ms", "", None)
    add(scenario, f"  fan-out: 202 -> all {sms:,} recorded", f"{sms / (run.done - run.committed):,.0f} SMS/s",
        "", None)
    fake = run.fake
    fake_rate = (fake["count"] - 1) / (fake["last"] - fake["first"]) if fake["count"] > 1 else 0.0
    add(scenario, "  fan-out at the fake, first -> last request", f"{fake_rate:,.0f} SMS/s", "", None)
    add(scenario, "  POST /api/alerts answered (plan + commit)", f"{run.committed - run.start:.2f} s", "", None)
    add(scenario, f"  preview of {preview_rows:,} rows: latency", f"{run.preview[1] - run.preview[0]:.2f} s",
        "", None)
    add(scenario, "all sent once; preview counted every row", "yes" if run.ok else "NO", "exact", run.ok)
    missed = p99 > LAG_P99_BOUND_S or worst > LAG_MAX_BOUND_S
    if diagnosis == "never" or (diagnosis == "auto" and not missed):
        return
    say("    diagnosis: the same run again, instrumented"
        + (" (and the stack watchdog thread, which changes the figures)" if diagnosis == "stacks" else ""))
    again = lag_run(providers, cluster, directory / "diagnosis", sms, preview_rows, rate, jitter, instrument=True,
                    stacks=diagnosis == "stacks", freeze=freeze)
    describe(again)
    diagnose(again)
    instrumented = again.lags()["whole window"]
    add(scenario, "  (instrumented run) lag p99 / max",
        f"{quantile(instrumented, 0.99) * 1000:.0f} / {instrumented[-1] * 1000:.0f} ms", "", None)

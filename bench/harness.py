"""Engine-side helpers: start the provider process, write configs, fire in-process with timestamps.

A fire here is exactly what ``broadcaster fire --live --yes`` does after its
confirmation prompt: ``plan_alert`` (validate, render, count the audience), then
``deliver`` (open every channel, commit the outbox, fan out) on a plain loop (a
virtual-time one for a dry-run), with the real SDKs against the fakes. The only
additions are timestamps:

* ``plan``: ``plan_alert`` start and end;
* ``commit_start``: when ``store.alerts.create`` is entered (wrapped on the instance);
* ``commit``: the ``on_commit`` hook of ``deliver`` (right after COMMIT);
* ``last_outcome``: the last call of the ``progress`` hook (an outcome known);
* ``end``: ``deliver`` returned, so every outcome is committed to the store.

All stamps are ``time.monotonic()`` (CLOCK_MONOTONIC, shared with the provider process).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.fakes import GRAPH_TOKEN
from broadcaster.app.context import open_app
from broadcaster.clock import run_virtual
from broadcaster.engine.dispatcher import Tuning
from broadcaster.engine.outbox import plan_alert
from broadcaster.engine.runner import deliver
from broadcaster.states import Mode
from broadcaster.templates.variables import example_inputs
from tests.engine.providers import AREAS, SECRETS, whatsapp_content
from tests.support import write_config

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "road_closure"  # its example places cover every area in AREAS
PUBLIC_URL = "https://alerts.example.gov"  # [broadcaster] public_url: Instagram channels need one to load


def set_secrets() -> None:
    """The channels name environment variables; the fakes accept these values."""
    os.environ.update(SECRETS)
    os.environ["GRAPH_TOKEN"] = GRAPH_TOKEN


def uae_phone(n: int) -> str:
    return f"+97150{n:07d}"


def write_recipients(path: Path, count: int, *, start: int = 1) -> Path:
    """A recipients CSV, streamed to disk (a third in English, as the test harness does)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("phone,language,area\n")
        for i in range(count):
            handle.write(f"{uae_phone(start + i)},{'ar' if i % 3 else 'en'},{AREAS[i % len(AREAS)]}\n")
    return path


def x_channel(cid: str, base: str, rate: float = 50.0) -> dict[str, Any]:
    return {"id": cid, "kind": "x", "api_base": base, "api_key_env": "X_API_KEY", "api_secret_env": "X_API_SECRET",
            "access_token_env": "X_ACCESS_TOKEN", "access_secret_env": "X_ACCESS_SECRET", "rate_per_second": rate}


def telegram_channel(cid: str, base: str, chat_id: str, rate: float = 50.0) -> dict[str, Any]:
    return {"id": cid, "kind": "telegram", "api_base": base, "chat_id": chat_id, "token_env": "TELEGRAM_TOKEN",
            "rate_per_second": rate}


def sms_channel(cid: str, base: str, recipients: str, rate: float, sender: str = "+15005550006") -> dict[str, Any]:
    return {"id": cid, "kind": "sms", "api_base": base, "account_sid_env": "TWILIO_ACCOUNT_SID",
            "auth_token_env": "TWILIO_AUTH_TOKEN", "from": sender, "recipients": recipients,
            "rate_per_second": rate}


def webhook_channel(cid: str, url: str, rate: float = 50.0) -> dict[str, Any]:
    return {"id": cid, "kind": "webhook", "url": url, "secret_env": "PARTNER_HOOK_SECRET", "rate_per_second": rate}


def whatsapp_channel(cid: str, base: str, recipients: str, sender: str, content_sid: dict[str, Any],
                     rate: float = 50.0) -> dict[str, Any]:
    return {"id": cid, "kind": "whatsapp", "api_base": base, "account_sid_env": "TWILIO_ACCOUNT_SID",
            "auth_token_env": "TWILIO_AUTH_TOKEN", "from": f"whatsapp:{sender}", "recipients": recipients,
            "content_sid": content_sid, "rate_per_second": rate}


def email_channel(cid: str, url: str, recipients: str, sender: str, rate: float = 50.0,
                  **extra: Any) -> dict[str, Any]:
    """An email channel on the fake SMTP server (``smtp://127.0.0.1:PORT``): plain SMTP, allowed on loopback only."""
    parts = urlsplit(url)
    return {"id": cid, "kind": "email", "host": parts.hostname, "port": parts.port, "security": "plain",
            "username_env": "SMTP_USERNAME", "password_env": "SMTP_PASSWORD", "from": sender,
            "recipients": recipients, "rate_per_second": rate, **extra}


def facebook_channel(cid: str, base: str, page: str, rate: float = 50.0) -> dict[str, Any]:
    return {"id": cid, "kind": "facebook", "api_base": base, "page_id": page, "token_env": "GRAPH_TOKEN",
            "rate_per_second": rate}


def instagram_channel(cid: str, base: str, user: str, rate: float = 50.0) -> dict[str, Any]:
    return {"id": cid, "kind": "instagram", "api_base": base, "ig_user_id": user, "token_env": "GRAPH_TOKEN",
            "rate_per_second": rate}


def write_emails(path: Path, count: int, *, start: int = 1) -> Path:
    """An email list (``email,language,area``), a third in English."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,language,area\n")
        for i in range(count):
            handle.write(f"resident{start + i:05d}@example.ae,{'ar' if i % 3 else 'en'},{AREAS[i % len(AREAS)]}\n")
    return path


def new_kind_channels(directory: Path, urls: dict[str, str], *, whatsapp: int = 0, email: int = 0,
                      facebook: int = 0, instagram: int = 0, recipients: int = 1, rate: float = 50.0,
                      email_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Many channels of each kind of issue 13, each its own outlet at the fakes (scenario 17).

    WhatsApp: its own sender number and ``recipients``-phone list, every shipped template's Content SIDs
    (the fake knows them); email: its own ``from`` address and ``recipients``-address list, all on the one
    SMTP server and login; Facebook: its own Page; Instagram: its own account. Writes the lists into ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    content_sid, _exercise, _bodies = whatsapp_content()
    channels: list[dict[str, Any]] = []
    for i in range(max(whatsapp, email, facebook, instagram)):  # interleaved, as mixed_channels lists them
        if i < whatsapp:
            write_recipients(directory / f"wa-{i:03d}.csv", recipients, start=5000 + i * recipients)
            channels.append(whatsapp_channel(f"wa-{i:03d}", urls["whatsapp"], f"wa-{i:03d}.csv",
                                             f"+1500555{i:04d}", content_sid, rate))
        if i < email:
            write_emails(directory / f"email-{i:03d}.csv", recipients, start=1 + i * recipients)
            channels.append(email_channel(f"email-{i:03d}", urls["email"], f"email-{i:03d}.csv",
                                          f"Alerts {i:03d} <alerts-{i:03d}@alerts.example.gov>", rate,
                                          **(email_options or {})))
        if i < facebook:
            channels.append(facebook_channel(f"fb-{i:03d}", urls["facebook"], f"10400000000{i:04d}", rate))
        if i < instagram:
            channels.append(instagram_channel(f"ig-{i:03d}", urls["instagram"], f"178414000000{i:05d}", rate))
    return channels


def write_channels(directory: Path, channels: list[dict[str, Any]], *, database: str = "var/bench.db",
                   **top: Any) -> Path:
    return write_config(directory, channels, templates=str(REPO / "templates"), database=database, **top)


def mixed_channels(directory: Path, urls: dict[str, str], *, x: int = 0, telegram: int = 0, webhook: int = 0,
                   sms: int = 0, rate: float = 50.0) -> list[dict[str, Any]]:
    """Many channels of each kind, each its own outlet at the fakes (as scenario 2 builds them).

    X: its own path prefix (one "account" each); Telegram: its own chat; webhook: its own URL path;
    SMS: its own one-recipient list and sender number. Writes the SMS lists into ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    channels: list[dict[str, Any]] = []
    for i in range(max(x, telegram, webhook, sms)):  # interleaved, as scenario 2 lists them
        if i < x:
            channels.append(x_channel(f"x-{i:03d}", f"{urls['x']}/x{i:03d}", rate))
        if i < telegram:
            channels.append(telegram_channel(f"tg-{i:03d}", urls["telegram"], f"@bench_{i:03d}", rate))
        if i < webhook:
            channels.append(webhook_channel(f"hook-{i:03d}", f"{urls['webhook']}/alerts/{i:03d}", rate))
        if i < sms:
            write_recipients(directory / f"sms-{i:03d}.csv", 1, start=1000 + i)
            channels.append(sms_channel(f"sms-{i:03d}", urls["sms"], f"sms-{i:03d}.csv", rate,
                                        sender=f"+1500555{i:04d}"))
    return channels


class ProviderProcess:
    """``with ProviderProcess() as p:`` starts ``bench.provider_proc``; ``p.urls[kind]`` is each fake's base URL."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}

    def __enter__(self) -> ProviderProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.provider_proc"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.urls = self._read()["urls"]
        return self

    def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the provider process exited")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps({"cmd": cmd, **args}) + b"\n")
        self.proc.stdin.flush()
        return self._read()

    def reset(self, latency: float = 0.0, jitter: tuple[float, float] | None = None) -> None:
        self.call("reset", latency=latency, jitter=list(jitter) if jitter else None)

    def stats(self, window: float | None = None) -> dict[str, Any]:
        return self.call("stats", window=window)

    def count(self) -> dict[str, int]:
        """Send requests each fake has received so far (cheap enough to poll every 50 ms)."""
        return self.call("count")

    def answered(self) -> dict[str, int]:
        """Send requests each fake has accepted (answered 2xx) so far."""
        return self.call("answered")

    def times(self, fake: str) -> list[float]:
        """Arrival stamps (CLOCK_MONOTONIC) of one fake's send requests, in arrival order."""
        answer: list[float] = self.call("times", fake=fake)["times"]
        return answer

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        try:
            self.call("quit")
            self.proc.wait(timeout=10)
        except Exception:  # best effort: this is our own child process
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class Fired:
    alert_id: str
    deliver_start: float
    plan_start: float
    plan_end: float
    commit_start: float
    commit: float
    end: float
    created: int
    skipped: int
    last_outcome: float | None
    states: Counter[str] = field(default_factory=Counter)

    @property
    def named_states(self) -> dict[str, int]:
        """Outcome counts keyed by plain strings (orjson refuses str subclasses as keys)."""
        return {str(k): v for k, v in self.states.items()}

    @property
    def plan_s(self) -> float:
        return self.plan_end - self.plan_start

    @property
    def open_s(self) -> float:
        """deliver() start -> outbox transaction start: building and opening every channel client."""
        return self.commit_start - self.deliver_start

    @property
    def commit_s(self) -> float:
        return self.commit - self.commit_start

    @property
    def send_s(self) -> float:
        return self.end - self.commit


def fire(
    config: Path, db: Path | str, *, tuning: Tuning | None = None, mode: str = "live",
    profiler: cProfile.Profile | None = None,
) -> Fired:
    """One alert through plan_alert + deliver, timestamped (a dry-run on a virtual-time loop).

    ``profiler``, when given, runs from the outbox commit until deliver() returns.
    """
    work = _fire(config, db, tuning=tuning, mode=Mode(mode), profiler=profiler)
    return run_virtual(work) if mode == Mode.DRY_RUN else asyncio.run(work)


async def _fire(config: Path, db: Path | str, *, tuning: Tuning | None, mode: Mode,
                profiler: cProfile.Profile | None) -> Fired:
    async with open_app(str(config), str(db)) as app:
        template = app.catalogue.get(TEMPLATE)
        plan_start = time.monotonic()
        now = time.time()
        plan = await plan_alert(app.config, app.catalogue, TEMPLATE, example_inputs(template, now, app.config.timezone),
                                mode=mode, now=now)
        plan_end = time.monotonic()
        marks: dict[str, Any] = {"last": None, "states": Counter(), "commit_start": None}
        create = app.store.alerts.create

        async def timed_create(*args: Any, **kwargs: Any) -> tuple[int, int]:
            marks["commit_start"] = time.monotonic()
            return await create(*args, **kwargs)

        app.store.alerts.create = timed_create  # type: ignore[method-assign]

        async def on_commit(created: int, skipped: int) -> None:
            marks["commit"] = time.monotonic()
            marks["created"], marks["skipped"] = created, skipped
            if profiler is not None:
                profiler.enable()

        def progress(_channel: str, state: str) -> None:
            marks["last"] = time.monotonic()
            marks["states"][state] += 1

        deliver_start = time.monotonic()
        try:
            await deliver(app.store, plan.channels, mode, plan=plan, on_commit=on_commit, progress=progress,
                          tuning=tuning)
        finally:
            if profiler is not None:
                profiler.disable()
        end = time.monotonic()
        return Fired(plan.alert.id, deliver_start, plan_start, plan_end, marks["commit_start"], marks["commit"], end,
                     marks["created"], marks["skipped"], marks["last"], marks["states"])

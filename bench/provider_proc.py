"""The fake providers in their own process, driven by JSON lines on stdin.

The first four kinds' fakes (``x``, ``telegram``, ``sms``, ``webhook``), and for scenario 17 those of the
kinds of issue 13: ``whatsapp`` (a second Twilio that knows every shipped template's Content SIDs),
``facebook`` and ``instagram`` (a Graph API each) and ``email`` (a real aiosmtpd server; its URL is
``smtp://127.0.0.1:PORT``). An idle fake costs nothing.

Why a process and not a thread (as the test suite does): on a 2-core machine a
thread shares the engine's GIL, so every microsecond the fake spends parsing a
request would be charged to the engine's throughput and latency. In its own
process the fake uses the other core, and the figures measure the engine.

Protocol (one JSON object per line, one answer line per command)::

    -> {"cmd": "reset", "latency": 0.2, "jitter": null}      clear stamps, set latency
    -> {"cmd": "stats", "window": 1.0}                       stamps summary per fake
    -> {"cmd": "count"}                                      send requests so far per fake (cheap, for polling)
    -> {"cmd": "answered"}                                   accepted (2xx) send answers so far per fake
    -> {"cmd": "times", "fake": "sms"}                       one fake's arrival stamps, in arrival order
    -> {"cmd": "quit"}

The first line this process prints is ``{"ready": true, "urls": {...}}``.
Run it from the repository root: ``python -m bench.provider_proc``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from bench.fakes import (
    GRAPH_TOKEN,
    BenchGraph,
    BenchMixin,
    BenchSmtp,
    BenchTelegram,
    BenchTwilio,
    BenchWebhook,
    BenchX,
)
from tests.engine.providers import SECRETS, whatsapp_content


def _out(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


async def serve() -> None:
    _live, _exercise, bodies = whatsapp_content()
    fakes: dict[str, BenchMixin | BenchSmtp] = {
        "x": BenchX(),
        "telegram": BenchTelegram(),
        "sms": BenchTwilio(account_sid=SECRETS["TWILIO_ACCOUNT_SID"]),
        "webhook": BenchWebhook(SECRETS["PARTNER_HOOK_SECRET"]),
        "whatsapp": BenchTwilio(account_sid=SECRETS["TWILIO_ACCOUNT_SID"], content=bodies),
        "facebook": BenchGraph(token=GRAPH_TOKEN),
        "instagram": BenchGraph(token=GRAPH_TOKEN),
        "email": BenchSmtp(username=SECRETS["SMTP_USERNAME"], password=SECRETS["SMTP_PASSWORD"]),
    }
    for fake in fakes.values():
        await fake.start()
    _out({"ready": True, "urls": {name: fake.base_url for name, fake in fakes.items()}})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            cmd = orjson.loads(line)
            if cmd["cmd"] == "quit":
                _out({"ok": True})
                break
            if cmd["cmd"] == "reset":
                jitter = tuple(cmd["jitter"]) if cmd.get("jitter") else None
                for fake in fakes.values():
                    fake.reset(float(cmd.get("latency", 0.0)), jitter)
                _out({"ok": True})
            elif cmd["cmd"] == "count":
                _out({name: len(fake.arrivals.times) for name, fake in fakes.items()})
            elif cmd["cmd"] == "answered":
                _out({name: len(fake.arrivals.answered) for name, fake in fakes.items()})
            elif cmd["cmd"] == "times":
                _out({"times": fakes[cmd["fake"]].arrivals.times})
            elif cmd["cmd"] == "stats":
                _out({name: {**fake.arrivals.summary(cmd.get("window")), **fake.stats()}
                      for name, fake in fakes.items()})
            else:
                _out({"error": f"unknown command {cmd['cmd']!r}"})
    finally:
        for fake in fakes.values():
            await fake.stop()


if __name__ == "__main__":
    asyncio.run(serve())

"""A small scriptable HTTP server on 127.0.0.1 that provider fakes build on.

Each fake registers its provider's routes and calls :meth:`FakeServer.scripted`
first: if a scripted step is queued (fail N times with 429/5xx, hang past the
client's timeout), that step answers; otherwise the fake answers as the real
provider would. Every request is recorded, in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.parser
import email.policy
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
from aiohttp import web


@dataclass
class Step:
    """One scripted answer. ``hang`` sleeps that long before answering (a timeout).

    ``body`` may be a function of the :class:`Recorded` request: a provider that echoes what it was sent.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    accept: bool = False  # record the message as accepted, then answer with this step anyway


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    headers: dict[str, str]
    body: bytes


class FakeServer:
    """Start with ``await fake.start()``; ``fake.base_url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.steps: deque[Step] = deque()
        self.requests: list[Recorded] = []
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url = ""

    def script(self, *steps: Step, times: int = 1) -> None:
        """Queue answers for the next requests, in order, before normal service resumes."""
        for _ in range(times):
            self.steps.extend(steps)

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # release hanging handlers so shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def record(self, request: web.Request) -> Recorded:
        body = await request.read()
        form: dict[str, str] = {}
        parsed_json: Any = None
        ctype = request.content_type
        if ctype == "application/x-www-form-urlencoded":
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        elif ctype == "application/json" and body:
            parsed_json = orjson.loads(body)
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            form=form,
            json=parsed_json,
            headers=dict(request.headers),
            body=body,
        )
        self.requests.append(rec)
        return rec

    def next_step(self, request: Recorded | None = None) -> Step | None:
        """The next scripted answer; a step whose ``body`` is callable answers with ``body(request)`` (an echo)."""
        step = self.steps.popleft() if self.steps else None
        if step is not None and callable(step.body) and request is not None:
            step = dataclasses.replace(step, body=step.body(request))
        return step

    async def hold(self, seconds: float) -> None:
        """Wait ``seconds`` (a hung provider), or until the fake stops."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def answer(self, step: Step) -> web.Response:
        await self.hold(step.hang)
        if isinstance(step.body, str):  # a gateway's HTML error page rather than an API answer
            return web.Response(status=step.status, text=step.body, content_type="text/html",
                                headers=step.headers)
        return web.json_response(step.body, status=step.status, headers=step.headers, dumps=_dumps)

    async def provider_latency(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def multipart_fields(request: web.Request, recorded: Recorded) -> dict[str, Any]:
    """Fields of a multipart body (a photo upload): text as str, files as bytes."""
    if request.content_type != "multipart/form-data":
        return {}
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + recorded.body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload if part.get_filename() else payload.decode("utf-8")
    return fields

"""``POST /api/templates/{id}/approve`` approves exactly the content the approver reviewed (finding 5)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time

import orjson

from broadcaster.channels.registry import KINDS
from broadcaster.templates.catalogue import Catalogue
from tests.engine.providers import REPO, Providers
from tests.service.conftest import drill_channels
from tests.service.support import PUBLIC_URL, rewrite_config, serving

# A small template (one enum, no datetime), so that each approval's full check is cheap.
NOTICE = """version = 1
title = { ar = "إشعار", en = "Notice" }
kinds = ["x", "telegram", "sms", "webhook"]
expires_hours = 2

[cap]
category = "Safety"
urgency = "Expected"
severity = "Minor"
certainty = "Observed"
responseType = "Monitor"
event = { ar = "إشعار", en = "Notice" }

[[variables]]
name = "topic"
type = "enum"
max_length = 20
required = true
example = "water"
[variables.choices]
water = { ar = "انقطاع المياه", en = "a water cut" }

[text.ar]
headline = "إشعار: {topic}"
short = "إشعار من الجهات المختصة بشأن {topic}."
long = "إشعار من الجهات المختصة بشأن {topic}."

[text.en]
headline = "Notice: {topic}"
short = "SHORT about {topic}."
long = "A notice from the authorities about {topic}."
"""
TEXT_A = NOTICE.replace("SHORT", "A notice from the authorities")
TEXT_B = NOTICE.replace("SHORT", "Evacuate now, a notice")  # what an editor switches in underneath


async def test_300_approvals_while_the_file_switches_between_a_and_b_approve_only_a(providers: Providers) -> None:
    templates = providers.tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    path = templates / "notice.toml"
    path.write_text(TEXT_B, encoding="utf-8")
    hash_b = Catalogue(templates, KINDS).get("notice").content_hash
    path.write_text(TEXT_A, encoding="utf-8")
    rewrite_config(providers, extra=drill_channels(providers), templates=templates, public_url=PUBLIC_URL)
    stop = threading.Event()
    carried: list[bytes] = []  # every approved file the editor saw

    def editor() -> None:
        flips = 0
        while not stop.is_set():
            current = path.read_bytes()
            if b"[approval]" in current:
                carried.append(current)
            flips += 1
            temp = path.with_name(f".edit-{flips}.tmp")
            temp.write_text(TEXT_B if flips % 2 else TEXT_A, encoding="utf-8")
            temp.replace(path)
            time.sleep(0.001)  # paces the editor only; nothing is asserted about time

    async with serving(providers) as api:
        status, shown = await api.get("/api/templates/notice")
        assert status == 200 and shown["approved"] is False
        hash_a = shown["sha256"]
        thread = threading.Thread(target=editor)
        thread.start()
        try:
            answers = await asyncio.gather(*(api.post("/api/templates/notice/approve", {"sha256": hash_a}, "approver")
                                             for _ in range(300)))
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
        statuses = [status for status, _ in answers]
        assert set(statuses) <= {200, 409}, [a for a in answers if a[0] not in (200, 409)][:3]
        assert all(body["sha256"] == hash_a for status, body in answers if status == 200)
        for text in carried:  # every approval that was ever on disk approved A, and sat in A
            assert text.decode().split("\n[approval]")[0].rstrip("\n") == TEXT_A.rstrip("\n")
            assert f'sha256 = "{hash_a}"'.encode() in text and hash_b.encode() not in text
        audited = {orjson.loads(row.detail)["sha256"] for row in await api.audit("approval", limit=400)}
        assert audited <= {hash_a}
        # Outside the race: with B on disk, A's approval is refused and B is not approved.
        path.write_text(TEXT_B, encoding="utf-8")
        status, body = await api.post("/api/templates/notice/approve", {"sha256": hash_a}, "approver")
        assert status == 409 and "changed since you reviewed it" in body["message"]
        status, shown = await api.get("/api/templates/notice")
        assert shown["approved"] is False and shown["sha256"] == hash_b


async def test_the_api_approves_only_a_template_that_passes_every_other_check(providers: Providers) -> None:
    # The CLI always refused this; the API approved it (an approval vouches for a text that fits).
    templates = providers.tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    path = templates / "road_closure.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("max_length = 40\n", "max_length = 400\n"),
                    encoding="utf-8")
    before = path.read_bytes()
    rewrite_config(providers, extra=drill_channels(providers), templates=templates, public_url=PUBLIC_URL)
    async with serving(providers) as api:
        _, shown = await api.get("/api/templates/road_closure")
        status, body = await api.post("/api/templates/road_closure/approve", {"sha256": shown["sha256"]}, "approver")
        assert status == 400 and body["field"] == "template", body
        assert "is not approved: fix these" in body["message"] and "worst case does not fit" in body["message"]
        assert path.read_bytes() == before
        assert await api.audit("approval") == []

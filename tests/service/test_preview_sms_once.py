"""The API preview's SMS totals count each phone once, as the commit sends it (issue 15)."""

from __future__ import annotations

from pathlib import Path

from tests.engine.providers import Providers
from tests.engine.test_audience import volunteers
from tests.service.support import PUBLIC_URL, rewrite_config, serving


async def test_the_preview_answer_counts_each_phone_once(tmp_path: Path) -> None:
    with Providers(tmp_path) as p:
        rewrite_config(p, extra=volunteers(p), public_url=PUBLIC_URL)
        async with serving(p) as api:
            status, body = await api.post("/api/preview", {"template": "road_closure", "use_examples": True,
                                                           "mode": "dry-run"}, "officer")
    assert status == 200, body
    rows = [m for m in body["messages"] if m["kind"] == "sms"]
    assert sum(m["recipients"] for m in rows) == 13  # each channel's own count, as it is
    assert body["sms"]["phones"] == 9 and body["sms"]["on_several"] == 3 and body["sms"]["duplicates"] == 4
    assert body["sms"]["segments"] < sum(m["cost_segments"] for m in rows)

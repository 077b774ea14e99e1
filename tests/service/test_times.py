"""Time rules over HTTP (finding 6): a 400 whose ``field`` names the variable, for preview and fire alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.service.support import Api, provider_requests

DUBAI = ZoneInfo("Asia/Dubai")


def in_dubai(**delta: float) -> str:
    return (datetime.now(DUBAI) + timedelta(**delta)).replace(microsecond=0).isoformat()


BAD_TIMES: list[tuple[str, dict[str, Any], str]] = [
    ("flood_warning", {"level": "warning", "area": "DXB-HATTA", "until": in_dubai(days=-365)}, "until"),
    ("earthquake", {"magnitude": "5.4", "area": "DXB", "occurred": in_dubai(days=30)}, "occurred"),
    ("road_closure", {"road": "E11", "reason": "accident", "starts": in_dubai(days=2), "ends": in_dubai(days=1),
                      "detour": {"ar": "شارع الخيل", "en": "Al Khail Road"}}, "ends"),
]


@pytest.mark.parametrize(("template", "variables", "name"), BAD_TIMES, ids=[n for _, _, n in BAD_TIMES])
@pytest.mark.parametrize("path", ["/api/preview", "/api/alerts"])
async def test_a_time_outside_its_rule_is_a_400_naming_the_variable(api: Api, template: str,
                                                                   variables: dict[str, Any], name: str,
                                                                   path: str) -> None:
    body = {"template": template, "variables": variables, "mode": "dry-run"}
    status, answer = await api.post(path, body, "officer")
    assert status == 400, answer
    assert answer["field"] == f"variables.{name}", answer
    assert answer["message"].startswith(f"variables.{name}: ") and f"variable {name!r}" in answer["message"]
    assert await api.app.store.alerts.recent() == [] and provider_requests(api.providers) == [0, 0, 0, 0]


async def test_template_detail_gives_examples_as_they_would_be_used_now_and_the_rules(api: Api) -> None:
    status, detail = await api.get("/api/templates/road_closure")
    assert status == 200
    variables = {v["name"]: v for v in detail["variables"]}
    starts, ends = (datetime.fromisoformat(variables[n]["examples"]["en"]) for n in ("starts", "ends"))
    assert datetime.now(DUBAI) < starts < ends
    assert variables["starts"]["example_rule"] == "+1d 22:00"
    assert variables["ends"]["time"] == {"when": "future", "within_hours": 720.0, "after": "starts"}
    assert detail["gazetteer"]["E11"] == {"type": "road", "ar": "شارع الشيخ زايد", "en": "Sheikh Zayed Road"}
    # The console fills the form from these examples: they preview and fire as they are.
    status, preview = await api.post("/api/preview", {"template": "road_closure", "use_examples": True,
                                                      "mode": "dry-run"}, "officer")
    assert status == 200, preview

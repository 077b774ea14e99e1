"""Issue 12, point 6: a refused request says why in a stable code (``reason``, with ``params``) that the console
translates into Arabic; the English ``message`` stays as it was, and nothing is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broadcaster.errors import Refusal
from tests.service.support import Api, provider_requests


def _at(hours: float) -> str:
    """An ISO time ``hours`` from now (UTC, with its offset), to the minute."""
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0).isoformat()


CASES: list[tuple[str, dict[str, Any], str, str, dict[str, Any]]] = [
    ("road_closure", {"starts": _at(48), "ends": _at(24)}, "variables.ends", Refusal.TIME_RULE,
     {"rule": "after", "after": "starts"}),
    ("road_closure", {"ends": _at(24 * 40)}, "variables.ends", Refusal.TIME_RULE, {"rule": "ahead", "hours": 720}),
    ("all_clear", {"ended": _at(2)}, "variables.ended", Refusal.TIME_RULE, {"rule": "past"}),
    ("road_closure", {"starts": "2026-12-01T22:00:00"}, "variables.starts", Refusal.NO_OFFSET, {}),
    ("road_closure", {"starts": "tomorrow"}, "variables.starts", Refusal.BAD_DATETIME, {}),
    ("road_closure", {"detour": {"ar": "شارع " * 10, "en": "Al Khail Road"}}, "variables.detour",
     Refusal.TOO_LONG, {"max": 40}),
    ("road_closure", {"detour": {"ar": "شارع الخيل", "en": ""}}, "variables.detour", Refusal.BOTH_LANGUAGES,
     {"language": "en"}),
    ("road_closure", {"reason": "parade"}, "variables.reason", Refusal.NOT_A_CHOICE, {}),
    ("road_closure", {"road": "DXB-MARINA"}, "variables.road", Refusal.NOT_A_CHOICE, {}),
    ("dust_storm", {"visibility": "10"}, "variables.visibility", Refusal.OUT_OF_RANGE, {"min": "50", "max": "5000"}),
    ("dust_storm", {"visibility": "far"}, "variables.visibility", Refusal.NOT_A_NUMBER, {}),
]


@pytest.mark.parametrize(("template", "variables", "field", "reason", "params"), CASES)
@pytest.mark.parametrize("path", ["/api/preview", "/api/alerts"])
async def test_a_refused_value_carries_its_reason_and_params(api: Api, path: str, template: str,
                                                             variables: dict[str, Any], field: str, reason: str,
                                                             params: dict[str, Any]) -> None:
    body = {"template": template, "use_examples": True, "mode": "dry-run", "variables": variables}
    status, answer = await api.post(path, body, "officer")
    assert status == 400, answer
    assert answer["error"] == "invalid" and answer["field"] == field
    assert answer["reason"] == reason
    assert answer.get("params", {}) == params
    assert field.split(".")[1] in answer["message"]  # the English message still names the variable
    await api.settle()
    assert await api.app.store.alerts.recent(10) == []


async def test_a_missing_required_variable_is_required(api: Api) -> None:
    status, answer = await api.post("/api/preview", {"template": "road_closure", "use_examples": False,
                                                     "mode": "dry-run", "variables": {"road": "E11"}}, "officer")
    assert status == 400, answer
    assert answer["reason"] == "required" and answer["field"] == "variables"
    assert answer["params"]["variables"] == ["reason", "starts", "ends", "detour"]  # every one, in template order
    assert "missing required variables: reason, starts, ends, detour" in answer["message"]



async def test_an_operator_firing_live_is_a_403_saying_the_role_needed(api: Api) -> None:
    before = provider_requests(api.providers)
    status, answer = await api.fire("operator", mode="live")
    assert status == 403, answer
    assert answer["error"] == "forbidden" and answer["reason"] == "forbidden_role"
    assert answer["params"] == {"needs": "officer", "role": "operator"}
    assert "officer" in answer["message"]
    await api.settle()
    assert provider_requests(api.providers) == before


async def test_an_error_without_a_finer_reason_has_none(api: Api) -> None:
    status, answer = await api.post("/api/preview", {"template": "road_closure", "bogus": 1}, "officer")
    assert status == 400, answer
    assert "reason" not in answer and "params" not in answer


async def test_the_openapi_error_schema_lists_every_reason(api: Api) -> None:
    status, document = await api.get("/api/openapi.json", None)
    assert status == 200
    error = document["components"]["schemas"]["Error"]["properties"]
    assert set(error["reason"]["enum"]) == {str(r) for r in Refusal}
    assert {"time_rule", "no_offset", "forbidden_role"} <= set(error["reason"]["enum"])


async def test_the_template_detail_gives_each_variable_its_arabic_and_english_label(api: Api) -> None:
    """What the console's form calls each variable (issue 12, point 6), from the template itself."""
    status, detail = await api.get("/api/templates/earthquake")
    assert status == 200, detail
    labels = {v["name"]: v.get("label") for v in detail["variables"]}
    assert labels["magnitude"] == {"ar": "قوة الزلزال على مقياس ريختر", "en": "Magnitude (Richter)"}
    assert all(label and label["ar"] and label["en"] for label in labels.values()), labels

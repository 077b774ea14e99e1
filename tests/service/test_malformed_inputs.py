"""Finding 12 over HTTP: dates past 2099, runbook inputs, a recipient list the server cannot read: a JSON answer
naming the field or the file, never a 500, and nothing sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.engine.providers import REPO, Providers
from tests.service.conftest import drill_channels
from tests.service.support import PUBLIC_URL, Api, provider_requests, rewrite_config, serving

EDGES = ["0001-01-01T00:00:00+04:00", "9999-12-31T23:59:59-04:00", "9999-12-31T23:59:59+00:00"]


@pytest.mark.parametrize("moment", EDGES)
@pytest.mark.parametrize("path", ["/api/preview", "/api/alerts"])
async def test_a_date_outside_the_years_2000_to_2099_is_a_400_naming_the_variable(api: Api, path: str,
                                                                                 moment: str) -> None:
    body = {"template": "road_closure", "use_examples": True, "mode": "dry-run", "variables": {"ends": moment}}
    status, answer = await api.post(path, body, "officer")
    assert status == 400, answer
    assert answer["field"] == "variables.ends" and "'ends'" in answer["message"] and moment in answer["message"]
    assert "between the years 2000 and 2099" in answer["message"]
    await api.settle()
    assert await api.app.store.alerts.recent(10) == []


@pytest.fixture
async def rb_api(providers: Providers) -> AsyncIterator[Api]:
    rewrite_config(providers, extra=drill_channels(providers), public_url=PUBLIC_URL, runbooks=str(REPO / "runbooks"))
    async with serving(providers) as service_api:
        yield service_api


@pytest.mark.parametrize("moment", [*EDGES, "+99999d", "+999999d 22:00"])
async def test_a_runbook_time_outside_the_range_is_a_400_naming_the_input(rb_api: Api, moment: str) -> None:
    status, answer = await rb_api.post("/api/runbooks/flood_response/rehearse", {"inputs": {"until": moment}},
                                       "operator")
    assert status == 400, answer
    assert answer["field"] == "inputs.until", answer


async def test_a_latin1_recipient_list_is_a_json_503_naming_the_line_and_nothing_is_sent(api: Api) -> None:
    """Before, the UnicodeDecodeError was a bare 500 with the details in the server log only.

    The list is the server's configuration, not the officer's input: a 503 'misconfigured' (as for a
    missing provider secret) that names the file, line and byte for the operator who can fix it."""
    residents = api.providers.tmp_path / "residents.csv"
    residents.write_bytes(residents.read_bytes() + "+971509999999,en,Caf\u00e9\n".encode("latin-1"))
    status, answer = await api.fire("officer", mode="live")
    assert status == 503, answer
    assert answer["error"] == "misconfigured"
    assert "key 'recipients'" in answer["message"] and "byte 0xE9 is not UTF-8" in answer["message"]
    # The file is named, relative to the folder channels.toml is in: no server path reaches the caller.
    assert "residents.csv: line 5" in answer["message"] and str(api.providers.tmp_path) not in answer["message"]
    await api.settle()
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.app.store.alerts.recent(10) == []

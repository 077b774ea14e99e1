"""Query parameters: ASCII whole numbers in their bounds, or a JSON 400 naming the parameter; never a 500."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.service.http import ApiError
from broadcaster.service.query import ALERTS_LIMIT, PAGE_LIMIT, PAGE_OFFSET, IntParam
from tests.service.support import Api

BAD = ["²", "١٢", "-1", "+5", " 5", "5 ", "1e3", "0x10", "5.0", "", "9" * 30, "99999999999999999999999"]


@pytest.mark.parametrize("value", BAD)
async def test_a_bad_limit_on_the_alert_list_is_a_400_naming_it(api: Api, value: str) -> None:
    status, body = await api.get(f"/api/alerts?limit={quote(value)}")
    assert status == 400, body
    assert body["error"] == "invalid" and body["field"] == "limit"
    assert "whole number from 1 to 200" in body["message"]


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("value", ["²", "9" * 30, "100000001"])
async def test_bad_paging_of_an_alert_and_its_log_is_a_400_naming_it(api: Api, name: str, value: str) -> None:
    status, fired = await api.fire("officer", mode="dry-run")
    assert status == 202, fired
    await api.settle()
    for path in (f"/api/alerts/{fired['alert_id']}", f"/api/alerts/{fired['alert_id']}/log"):
        status, body = await api.get(f"{path}?{name}={quote(value)}")
        assert status == 400, (path, body)
        assert body["field"] == name and name in body["message"]


async def test_the_bounds_themselves_are_accepted(api: Api) -> None:
    assert (await api.get("/api/alerts?limit=200"))[0] == 200
    assert (await api.get("/api/alerts?limit=1"))[0] == 200
    assert (await api.get("/api/alerts?limit=201"))[0] == 400
    assert (await api.get("/api/alerts?limit=0"))[0] == 400


def read(param: IntParam, raw: str) -> int:
    return param.read(make_mocked_request("GET", f"/api/x?{param.name}={quote(raw)}"))


@settings(max_examples=300, deadline=None)
@given(param=st.sampled_from([ALERTS_LIMIT, PAGE_LIMIT, PAGE_OFFSET]),
       raw=st.one_of(st.text(max_size=30), st.integers(-10**20, 10**20).map(str)))
def test_a_parameter_is_a_number_in_its_bounds_or_a_400_naming_it(param: IntParam, raw: str) -> None:
    try:
        value = read(param, raw)
    except ApiError as exc:
        assert exc.status == 400 and exc.field == param.name
        assert f"from {param.low} to {param.high}" in exc.message
        return
    assert param.low <= value <= param.high
    assert raw == str(value) or raw.lstrip("0") == str(value).lstrip("0")


_MODES = ("dry-run", "exercise", "live")


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40),
                 st.lists(st.sampled_from([*_MODES, "LIVE", "rehearsal", "", " live"]), max_size=5).map(",".join)))
def test_the_mode_filter_is_known_modes_comma_separated_or_a_400_naming_it(raw: str) -> None:
    from broadcaster.service.query import read_modes
    from broadcaster.states import Mode

    request = make_mocked_request("GET", f"/api/alerts?mode={quote(raw, safe=',')}")
    try:
        modes = read_modes(request)
    except ApiError as exc:
        assert exc.status == 400 and exc.field == "mode"
        assert "dry-run, exercise, live" in exc.message
        assert any(part not in _MODES for part in raw.split(","))
    else:
        names = raw.split(",")
        assert modes is not None and all(name in _MODES for name in names)
        assert modes == [Mode(name) for name in dict.fromkeys(names)]

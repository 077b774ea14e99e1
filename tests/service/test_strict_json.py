"""Request bodies: a key given twice is a 400 naming it and nothing is sent; whatever the bytes, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.service.strict_json import BodyError, parse_body
from tests.service.support import Api, provider_requests


async def post_raw(api: Api, path: str, raw: bytes, user: str = "officer") -> tuple[int, Any]:
    headers = {**api.headers(user), "Content-Type": "application/json"}
    async with api.client.post(path, data=raw, headers=headers) as response:
        return response.status, await response.json()


async def test_a_repeated_mode_is_a_400_and_nothing_is_sent(api: Api) -> None:
    """orjson kept the last "mode": a body a reviewer read as a dry-run went out live."""
    raw = b'{"template": "road_closure", "use_examples": true, "mode": "dry-run", "confirm": "road_closure", ' \
          b'"mode": "live"}'
    status, body = await post_raw(api, "/api/alerts", raw)
    assert status == 400, body
    assert body["error"] == "invalid" and body["field"] == "mode"
    assert "'mode' is given more than once" in body["message"]
    await api.settle()
    assert await api.app.store.alerts.recent(10) == []
    assert provider_requests(api.providers) == [0, 0, 0, 0]


@pytest.mark.parametrize(("path", "raw", "field"), [
    ("/api/preview", b'{"template": "road_closure", "template": "flood_warning", "use_examples": true}', "template"),
    ("/api/alerts", b'{"template": "road_closure", "variables": {"road": "E11", "road": "E311"}, "mode": "dry-run"}',
     "variables.road"),
    ("/api/alerts", b'{"template": "road_closure", "areas": ["DXB"], "variables": {"detour": {"ar": "x", "en": "y",'
                    b' "en": "z"}}, "mode": "dry-run"}', "variables.detour.en"),
])
async def test_a_repeated_key_anywhere_is_named_by_its_path(api: Api, path: str, raw: bytes, field: str) -> None:
    status, body = await post_raw(api, path, raw)
    assert status == 400, body
    assert body["field"] == field and body["message"].startswith(f"{field}: the key ")
    assert await api.app.store.alerts.recent(10) == []


@pytest.mark.parametrize(("raw", "field", "words"), [
    (b'{"template": "road_closure", "variables": {"magnitude": 1e400}}', "variables.magnitude", "too large"),
    (b'{"template": "road_\\ud800"}', "template", "lone surrogate"),
    (b'{"template": "Caf\xe9"}', "body", "not UTF-8"),
    (b"[" * 100_000, "body", "nested too deeply"),
])
async def test_other_unusable_bodies_are_a_400(api: Api, raw: bytes, field: str, words: str) -> None:
    status, body = await post_raw(api, "/api/preview", raw)
    assert status == 400, body
    assert body["field"] == field and words in body["message"]


def test_a_body_without_repeats_reads_as_json_does() -> None:
    raw = b'\xef\xbb\xbf{"a": [1, 2.5, {"b": null}], "c": {"d": "\xd8\xb4\xd8\xa7\xd8\xb1\xd8\xb9"}}'
    assert parse_body(raw) == {"a": [1, 2.5, {"b": None}], "c": {"d": "شارع"}}
    assert type(parse_body(b'{"a": {"b": 1}}')["a"]) is dict  # plain dicts, whatever orjson makes of them later
    with pytest.raises(BodyError, match="not valid JSON"):  # the standard parser reads NaN; orjson never did
        parse_body(b'{"variables": {"magnitude": NaN}}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=80), json_values.map(lambda v: json.dumps(v).encode()),
                 st.text(max_size=60).map(str.encode)))
def test_any_bytes_parse_or_give_a_body_error_naming_a_field(raw: bytes) -> None:
    try:
        value = parse_body(raw)
    except BodyError as exc:
        assert exc.field and str(exc).startswith(f"{exc.field}: ")
        return
    assert value == json.loads(raw.decode("utf-8-sig"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["mode", "template", "a"]), st.integers(0, 3)), min_size=1, max_size=6))
def test_an_object_is_refused_exactly_when_a_key_repeats(pairs: list[tuple[str, int]]) -> None:
    raw = ("{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}").encode()
    keys = [k for k, _ in pairs]
    if len(set(keys)) == len(keys):
        assert parse_body(raw) == dict(pairs)
    else:
        with pytest.raises(BodyError) as caught:
            parse_body(raw)
        first = next(k for i, k in enumerate(keys) if k in keys[:i])
        assert caught.value.field == first

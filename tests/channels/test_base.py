"""Clients (the per-run transports), the Channel base helpers and the registry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broadcaster.channels.base import DRY_RUN_NOTE, Clients, Receipt
from broadcaster.channels.registry import KINDS, build_channels, kind_of, targets
from broadcaster.channels.telegram import TelegramChannel
from broadcaster.errors import ConfigError
from broadcaster.secret import Secret
from tests.channels.kinds import CASES
from tests.support import make_config


async def test_concurrent_callers_of_a_key_get_one_transport_made_once() -> None:
    made: list[object] = []
    closed: list[object] = []

    async def factory() -> object:
        await asyncio.sleep(0.01)
        made.append(object())
        return made[-1]

    async def closer(value: object) -> None:
        closed.append(value)

    async with Clients(recording=False) as clients:
        first, second, third = await asyncio.gather(*(clients.shared("k", factory, closer) for _ in range(3)))
        other = await clients.shared("other", factory, closer)
        assert first is second is third
        assert other is not first
    assert made == [first, other]
    assert closed == [other, first], "closed newest first"


async def test_a_factory_that_fails_is_tried_again_and_closed_clients_refuse() -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("no file descriptors")
        return "transport"

    async def closer(value: str) -> None:
        return None

    clients = Clients(recording=False)
    with pytest.raises(OSError):
        await clients.shared("k", flaky, closer)
    assert await clients.shared("k", flaky, closer) == "transport"
    await clients.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await clients.shared("k", flaky, closer)


async def test_a_failing_closer_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    closed: list[str] = []

    async def make_a() -> str:
        return "a"

    async def make_b() -> str:
        return "b"

    async def close_ok(value: str) -> None:
        closed.append(value)

    async def close_bad(value: str) -> None:
        raise RuntimeError("boom")

    async with Clients(recording=False) as clients:
        await clients.shared("a", make_a, close_ok)
        await clients.shared("b", make_b, close_bad)
    assert closed == ["a"]
    assert "closing a shared transport failed" in caplog.text


async def test_recorded_requests_are_numbered_before_the_wait() -> None:
    clients = Clients(recording=True, latency_s=0.01)
    numbers = await asyncio.gather(*(clients.answer("sms") for _ in range(5)))
    assert sorted(numbers) == [1, 2, 3, 4, 5]
    assert clients.recorded == {"sms": 5}


def test_one_tls_context_per_clients() -> None:
    clients = Clients(recording=False)
    assert clients.ssl_context() is clients.ssl_context()
    assert Clients(recording=False).ssl_context() is not clients.ssl_context()


def channel_for(tmp_path: Path, *, recording: bool) -> TelegramChannel:
    config = make_config(tmp_path, [{"id": "t", "kind": "telegram", **CASES["telegram"].table}]).channels[0]
    return TelegramChannel(config, Clients(recording=recording))


def test_a_dry_run_uses_a_masked_placeholder_for_a_missing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BCAST_TEST_TELEGRAM_TOKEN", raising=False)
    secret = channel_for(tmp_path, recording=True).secret("token_env")
    assert isinstance(secret, Secret) and secret.env_name == "BCAST_TEST_TELEGRAM_TOKEN"
    assert secret.reveal() not in repr(secret)
    with pytest.raises(ConfigError, match="BCAST_TEST_TELEGRAM_TOKEN is not set"):
        channel_for(tmp_path, recording=False).secret("token_env")


def test_a_dry_run_receipt_says_so_and_a_follow_up_finds_the_provider_id(tmp_path: Path) -> None:
    live, rehearsal = channel_for(tmp_path, recording=False), channel_for(tmp_path, recording=True)
    assert live.receipt("42", 200, "queued") == Receipt("42", 200, "queued")
    assert rehearsal.receipt("42", 200, "queued") == Receipt("dry-run-42", 200, DRY_RUN_NOTE)
    assert rehearsal.receipt(None, 200) == Receipt(None, 200, DRY_RUN_NOTE)
    assert rehearsal.provider_ref("dry-run-42") == "42"
    assert live.provider_ref("dry-run-42") == "dry-run-42"  # a live send never trusts a rehearsal's id


def test_a_real_send_names_every_missing_variable_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tables = [{"id": f"{name}-c", "kind": case.kind, **case.target("http://127.0.0.1:1"), **case.table}
              for name, case in CASES.items()]
    config = make_config(tmp_path, tables, **{k: v for case in CASES.values() for k, v in case.top.items()})
    for case in CASES.values():
        for name in case.env:
            monkeypatch.delenv(name, raising=False)

    with pytest.raises(ConfigError) as caught:
        build_channels(config.channels, Clients(recording=False), mode="live")
    message = str(caught.value)
    assert message.startswith(f"{config.path}: live send needs these environment variables, which are not set: ")
    for case in CASES.values():
        for name in case.env:
            assert f"${name}" in message

    rehearsal = build_channels(config.channels, Clients(recording=True), mode="dry-run")
    assert [type(c) for c in rehearsal] == [KINDS[c.kind].serving(c) for c in config.channels]
    assert [type(c) for c in rehearsal] == [kind_of(c).serving(c) for c in config.channels]


def test_templates_check_targets_are_the_channels_or_each_kind_at_its_defaults(tmp_path: Path) -> None:
    assert [(t.name, t.kind) for t in targets(None)] == [(f"default {kind}", kind) for kind in KINDS]
    config = make_config(tmp_path, [{"id": "tg", "kind": "telegram", **CASES["telegram"].table, "layout": "separate"}])
    [target] = targets(config.channels)
    assert (target.name, target.kind) == ("channel 'tg'", "telegram")
    forms = {lang: {"headline": "h", "short": "s", "long": "l"} for lang in ("ar", "en")}
    assert [r.language for r in target.render(forms)] == ["ar", "en"]
    assert target.measure_piece("a&b") == 3

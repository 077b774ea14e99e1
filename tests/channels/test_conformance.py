"""What every channel kind must do, run for each kind in ``registry.KINDS`` (real SDKs, loopback fakes).

Each kind supplies a :class:`~tests.channels.kinds.KindCase`; the checks are written
once, here. A kind's own test file keeps only what is particular to that kind.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import traceback
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.channels import gate
from broadcaster.channels.base import DRY_RUN_NOTE, DRY_RUN_PREFIX, Channel, Clients
from broadcaster.channels.registry import KINDS, default_config
from broadcaster.config import KindOptions
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.netguard import no_network
from tests.channels.kinds import CASES, KindCase, closed_port_url
from tests.fakes.server import FakeServer
from tests.support import make_config


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> KindCase:
    kind_case = CASES[request.param]
    for name, value in kind_case.env.items():
        monkeypatch.setenv(name, value)
    return kind_case


@pytest.fixture
async def fake(case: KindCase) -> AsyncIterator[Any]:  # a FakeServer, or FakeSmtp
    async with case.fake() as server:
        yield server


def make(case: KindCase, tmp_path: Path, api_base: str, clients: Clients, **extra: Any) -> Channel:
    folder = tmp_path / str(extra.get("id", "main"))
    folder.mkdir(exist_ok=True)
    return case.channel(make_config(folder, [case.config_table(api_base, **extra)], **case.top).channels[0], clients)


async def failure(channel: Channel, case: KindCase) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(case.message())
    return caught.value


def test_the_registry_is_one_line_per_kind_and_every_kind_has_a_case() -> None:
    assert {case.kind for case in CASES.values()} == set(KINDS)
    for kind, cls in KINDS.items():
        assert cls.kind == kind
        assert not inspect.isabstract(cls), f"{cls.__name__} leaves part of the Channel protocol out"
        assert cls.default_rate_per_second > 0


async def test_a_send_is_one_request_through_the_sdk(case: KindCase, fake: FakeServer, tmp_path: Path,
                                                     clients: Clients) -> None:
    async with make(case, tmp_path, fake.base_url, clients) as channel:
        receipt = await channel.send(case.message())

    assert case.accepted(fake) == 1
    assert len(fake.requests) == case.requests_per_send, "one delivery, one request: the SDK must not retry"
    assert case.succeeded(receipt)
    assert receipt.note != DRY_RUN_NOTE
    assert clients.recorded == {}


async def test_a_shut_gate_stops_the_request_before_a_byte_leaves(case: KindCase, fake: FakeServer, tmp_path: Path,
                                                                   clients: Clients) -> None:
    """The fence's last look (channels.gate), on a new connection and on a pooled one."""
    holds = [False]
    async with make(case, tmp_path, fake.base_url, clients) as channel:
        # The SDK may wrap the Fenced error in its own; the gate remembers either way.
        with gate.opened(lambda: holds[0]) as shut_first, pytest.raises(Exception):  # noqa: B017
            await channel.send(case.message())
        assert shut_first.shut and fake.requests == []

        holds[0] = True
        with gate.opened(lambda: holds[0]) as open_gate:
            await channel.send(case.message())  # leaves a pooled connection behind
        assert not open_gate.shut and case.accepted(fake) == 1

        holds[0] = False
        with gate.opened(lambda: holds[0]) as shut_later, pytest.raises(Exception):  # noqa: B017
            await channel.send(case.message())
        assert shut_later.shut
    assert len(fake.requests) == case.requests_per_send and case.accepted(fake) == 1


async def test_a_refused_connection_is_retryable_network_and_not_sent(case: KindCase, tmp_path: Path,
                                                                     clients: Clients) -> None:
    async with make(case, tmp_path, closed_port_url(), clients) as channel:
        error = await failure(channel, case)

    assert (error.reason, error.retryable, error.sent_maybe) == (Reason.NETWORK, True, False)


async def test_a_timeout_after_the_request_left_is_retryable_and_maybe_sent(
    case: KindCase, fake: FakeServer, tmp_path: Path, clients: Clients
) -> None:
    fake.script(case.hang(30))

    async with make(case, tmp_path, fake.base_url, clients, timeout_s=0.3) as channel:
        error = await failure(channel, case)

    assert (error.reason, error.retryable, error.sent_maybe) == (Reason.TIMEOUT, True, True)
    assert len(fake.requests) == case.requests_per_send, "the SDK must not retry on its own"
    assert case.accepted(fake) == 1  # it did go out: that is why the engine must treat it as unknown


async def test_a_429_is_rate_limited_with_the_providers_retry_after(
    case: KindCase, fake: FakeServer, tmp_path: Path, clients: Clients
) -> None:
    fake.script(case.rate_limited)

    async with make(case, tmp_path, fake.base_url, clients) as channel:
        error = await failure(channel, case)

    assert (error.reason, error.retryable, error.retry_after) == (Reason.RATE_LIMITED, True, case.retry_after)
    assert (error.http_status, error.sent_maybe) == (case.rate_limited_status, False)
    assert len(fake.requests) == 1 and case.accepted(fake) == 0


async def test_channels_of_a_kind_share_one_pool_yet_keep_their_own_timeouts(
    case: KindCase, fake: FakeServer, tmp_path: Path, clients: Clients, connects: list[Any]
) -> None:
    quick = make(case, tmp_path, fake.base_url, clients, id="quick", timeout_s=0.3)
    patient = make(case, tmp_path, fake.base_url, clients, id="patient", timeout_s=5.0)
    third = make(case, tmp_path, fake.base_url, clients, id="third")
    async with quick, patient, third:
        for channel in (patient, third, quick):
            await channel.send(case.message())
        # Three channels, one after the other: one pooled connection to the provider.
        port = int(fake.base_url.rsplit(":", 1)[1])
        assert [a for a in connects if isinstance(a, tuple) and a[1] == port] == [("127.0.0.1", port)]

        fake.script(case.hang(1.0), case.hang(1.0))
        error = await failure(quick, case)
        receipt = await patient.send(case.message())

    assert (error.reason, error.sent_maybe) == (Reason.TIMEOUT, True)
    assert case.succeeded(receipt)


async def test_every_channel_of_a_run_shares_one_tls_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    for kind_case in CASES.values():
        for name, value in kind_case.env.items():
            monkeypatch.setenv(name, value)
    async with Clients(recording=False) as clients:
        channels = [make(CASES[name], tmp_path, closed_port_url(), clients, id=f"{name}-{n}")
                    for name in CASES for n in (1, 2)]
        monkeypatch.setattr(ssl, "create_default_context", counting)
        for channel in channels:
            await channel.open()
        for channel in channels:
            await channel.close()

    assert len(made) == 1, "the CA bundle is loaded once per run, not once per channel"


async def test_a_dry_run_runs_the_adapter_and_answers_locally_without_a_socket(
    case: KindCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connects: list[Any]
) -> None:
    for name in case.env:
        monkeypatch.delenv(name)  # a rehearsal needs no secrets: the SDKs sign with placeholders

    with no_network():
        async with (
            Clients(recording=True, latency_s=0) as clients,
            make(case, tmp_path, closed_port_url(), clients) as channel,
        ):
            first = await channel.send(case.message())
            # A rehearsed follow-up (another alert) threads under the rehearsal's own ids.
            again = await channel.send(replace(case.message(), alert_id="A-2", reply_to=first.provider_id))

    assert connects == []
    assert clients.recorded == {case.kind: 2 * case.requests_per_send}, "each send went down to the recording transport"
    for receipt in (first, again):
        assert receipt.note == DRY_RUN_NOTE
        assert receipt.provider_id is not None and receipt.provider_id.startswith(DRY_RUN_PREFIX)
    assert first.provider_id != again.provider_id


async def test_a_dry_run_is_as_slow_as_the_provider_it_simulates(case: KindCase, tmp_path: Path) -> None:
    loop_time = asyncio.get_running_loop().time
    async with (
        Clients(recording=True, latency_s=0.05) as clients,
        make(case, tmp_path, closed_port_url(), clients) as channel,
    ):
        started = loop_time()
        await channel.send(case.message())
        elapsed = loop_time() - started
    assert elapsed >= 0.05


async def test_secrets_never_reach_logs_errors_or_reprs(
    case: KindCase, fake: FakeServer, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    errors: list[DeliveryError] = []
    async with Clients(recording=False) as clients:
        channel = make(case, tmp_path, fake.base_url, clients, timeout_s=0.3)
        async with channel:
            await channel.send(case.message())
            for step in case.failures:
                fake.script(step)
                errors.append(await failure(channel, case))
            exposed = [repr(channel), str(channel), repr(channel.secrets()), str(channel.config), repr(clients)]
        async with make(case, tmp_path, closed_port_url(), clients, id="dead") as dead:
            errors.append(await failure(dead, case))

    for error in errors:
        exposed += [str(error), repr(error), "".join(traceback.format_exception(error))]
    exposed += [record.getMessage() for record in debug_logs.records]
    exposed.append(debug_logs.text)
    leaks = [(secret, text) for text in exposed for secret in case.secrets if secret in text]
    assert leaks == []
    # The SDK or the adapter did log on the way, masked: the logs were really checked.
    assert case.log_proof in debug_logs.text


def test_each_kinds_sample_table_parses_and_names_its_secrets() -> None:
    for kind, cls in KINDS.items():
        config = default_config(kind)
        assert isinstance(config.options, KindOptions)
        assert config.secret_env_names() == {k: v for k, v in cls.sample.items() if k.endswith("_env")}
        assert config.rate_per_second == cls.default_rate_per_second
        assert cls.render({lang: {"headline": "h", "short": "s", "long": "l"} for lang in ("ar", "en")}, config)


TOML_VALUES = st.one_of(
    st.text(max_size=12), st.integers(-5, 20), st.booleans(), st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(list(KINDS)), data=st.data())
def test_a_kind_parser_accepts_a_table_or_names_the_key_never_a_secret(kind: str, data: st.DataObject) -> None:
    """Whatever a table holds, parse_options gives the kind's options or one ConfigError naming the key."""
    cls = KINDS[kind]
    table: dict[str, Any] = {"id": "c", "kind": kind, **cls.sample}
    key = data.draw(st.sampled_from([*cls.sample, "layout", "on_unknown", "max_segments", "typo_key"]), "key")
    pasted = key.endswith("_env") and data.draw(st.booleans(), "a secret pasted where a NAME belongs")
    value = "s3cr3t:" + data.draw(st.text(max_size=12), "secret") if pasted else data.draw(TOML_VALUES, "value")
    table[key] = value
    where = "channels.toml: channel 'c'"
    try:
        options = cls.parse_options(table, where=where, base_dir=Path("/etc/broadcaster"))
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(where + ": ")
        assert repr(key) in message
        assert "s3cr3t:" not in message, "a pasted secret must not be echoed back"
        return
    assert not pasted, "a secret value was taken for a variable name"
    assert isinstance(options, KindOptions)
    for env_key, env_name in options.secret_envs().items():
        assert env_key.endswith("_env") and env_name.isidentifier() and env_name.isupper()

"""Channel selection: ``all``, ``id,id``, ``kind:KIND``, ``area:CODE``; exercise mode; template kinds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.channels.registry import KINDS
from broadcaster.config import ChannelConfig, load_config
from broadcaster.errors import ConfigError, SelectionError
from broadcaster.selection import check_areas, close_match, select_channels
from broadcaster.states import Mode
from tests.support import make_config

ROOT = Path(__file__).resolve().parents[1]
ALL_KINDS = ("x", "telegram", "sms", "webhook")
KNOWN_AREAS = {"DXB", "DXB-DEIRA", "DXB-MARINA", "DXB-HATTA"}
SECRETS = {
    "x": {"api_key_env": "X_API_KEY", "api_secret_env": "X_API_SECRET", "access_token_env": "X_ACCESS_TOKEN",
          "access_secret_env": "X_ACCESS_SECRET"},
    "telegram": {"chat_id": "@c", "token_env": "TELEGRAM_TOKEN"},
    "sms": {"account_sid_env": "TWILIO_ACCOUNT_SID", "auth_token_env": "TWILIO_AUTH_TOKEN", "from": "+15005550006",
            "recipients": "r.csv"},
    "webhook": {"url": "https://partner.example/hook", "secret_env": "HOOK_SECRET"},
}


def chan(channel_id: str, kind: str, *, areas: tuple[str, ...] = ("*",), exercise: bool = False) -> dict[str, object]:
    return {"id": channel_id, "kind": kind, "areas": list(areas), "exercise": exercise, **SECRETS[kind]}


@pytest.fixture
def channels(tmp_path: Path) -> tuple[ChannelConfig, ...]:
    return make_config(tmp_path, [
        chan("x-authority", "x"),
        chan("telegram-authority", "telegram"),
        chan("telegram-deira", "telegram", areas=("DXB-DEIRA",)),
        chan("sms-residents", "sms"),
        chan("sms-hatta", "sms", areas=("DXB-HATTA",)),
        chan("partner-hook", "webhook", areas=("DXB-MARINA", "DXB-DEIRA")),
        chan("sms-exercise", "sms", exercise=True),
        chan("telegram-exercise", "telegram", exercise=True, areas=("DXB-HATTA",)),
    ]).channels


def ids(
    channels: Iterable[ChannelConfig], selection: str, *, kinds: Iterable[str] = ALL_KINDS,
    areas: tuple[str, ...] = (), mode: Mode | None = None,
) -> list[str]:
    """The ids chosen; ``mode=None`` (a runbook checked for any mode) keeps live and exercise channels alike."""
    chosen = select_channels(channels, selection, kinds=kinds, areas=areas, mode=mode,
                             known_areas=KNOWN_AREAS)
    return [c.id for c in chosen]


def test_all_selects_every_channel_in_config_order(channels: tuple[ChannelConfig, ...]) -> None:
    assert ids(channels, "all") == [c.id for c in channels]
    assert ids(channels, "  ") == [c.id for c in channels]  # empty means all


def test_ids_select_those_channels_in_config_order(channels: tuple[ChannelConfig, ...]) -> None:
    assert ids(channels, "sms-residents, x-authority") == ["x-authority", "sms-residents"]
    assert ids(channels, "partner-hook,partner-hook") == ["partner-hook"]
    assert ids(channels, "telegram-authority,") == ["telegram-authority"]


def test_an_unknown_id_is_refused_naming_it_and_the_known_ones(channels: tuple[ChannelConfig, ...]) -> None:
    with pytest.raises(SelectionError) as caught:
        ids(channels, "x-authority,telegram-authoriti")
    message = str(caught.value)
    assert "unknown channel id 'telegram-authoriti'" in message
    assert "telegram-authority" in message and "sms-residents" in message


def test_kind_selects_every_channel_of_that_kind(channels: tuple[ChannelConfig, ...]) -> None:
    assert ids(channels, "kind:sms") == ["sms-residents", "sms-hatta", "sms-exercise"]
    assert ids(channels, "kind:webhook") == ["partner-hook"]


def test_an_unknown_kind_is_refused(channels: tuple[ChannelConfig, ...]) -> None:
    with pytest.raises(SelectionError, match=r"no channel of kind 'fax' in the config \(kinds: "):
        ids(channels, "kind:fax")


def test_area_selects_channels_covering_it(channels: tuple[ChannelConfig, ...]) -> None:
    assert ids(channels, "area:DXB-DEIRA") == [
        "x-authority", "telegram-authority", "telegram-deira", "sms-residents", "partner-hook", "sms-exercise",
    ]
    assert "sms-hatta" in ids(channels, "area:DXB-HATTA")
    assert "telegram-deira" not in ids(channels, "area:DXB-HATTA")


def test_an_unknown_area_is_refused(channels: tuple[ChannelConfig, ...]) -> None:
    with pytest.raises(SelectionError, match="unknown area 'DXB-ATLANTIS'"):
        ids(channels, "area:DXB-ATLANTIS")


def test_alert_areas_drop_channels_that_do_not_cover_them(channels: tuple[ChannelConfig, ...]) -> None:
    chosen = ids(channels, "all", areas=("DXB-MARINA",))
    assert chosen == ["x-authority", "telegram-authority", "sms-residents", "partner-hook", "sms-exercise"]
    with pytest.raises(SelectionError, match="'sms-hatta' does not cover area"):
        ids(channels, "sms-hatta", areas=("DXB-MARINA",))


def test_exercise_mode_keeps_only_exercise_channels(channels: tuple[ChannelConfig, ...]) -> None:
    assert ids(channels, "all", mode=Mode.EXERCISE) == ["sms-exercise", "telegram-exercise"]
    assert ids(channels, "kind:sms", mode=Mode.EXERCISE) == ["sms-exercise"]
    assert ids(channels, "area:DXB-HATTA", mode=Mode.EXERCISE) == ["sms-exercise", "telegram-exercise"]
    assert ids(channels, "sms-exercise", mode=Mode.EXERCISE) == ["sms-exercise"]


def test_exercise_mode_refuses_an_explicitly_named_live_channel(channels: tuple[ChannelConfig, ...]) -> None:
    with pytest.raises(SelectionError) as caught:
        ids(channels, "sms-exercise,sms-residents", mode=Mode.EXERCISE)
    message = str(caught.value)
    assert "'sms-residents' is not an exercise channel" in message


def test_exercise_mode_with_no_exercise_channel_left_is_refused(channels: tuple[ChannelConfig, ...]) -> None:
    with pytest.raises(SelectionError, match="no exercise channel matches"):
        ids(channels, "kind:webhook", mode=Mode.EXERCISE)


@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.DRY_RUN])
def test_a_live_alert_and_its_dry_run_never_select_an_exercise_channel(channels: tuple[ChannelConfig, ...],
                                                                      mode: Mode) -> None:
    """Drill channels take drills only: a live fire to "all", a kind or an area leaves them out."""
    public = ["x-authority", "telegram-authority", "telegram-deira", "sms-residents", "sms-hatta", "partner-hook"]
    assert ids(channels, "all", mode=mode) == public
    assert ids(channels, "kind:sms", mode=mode) == ["sms-residents", "sms-hatta"]
    assert ids(channels, "area:DXB-HATTA", mode=mode) == ["x-authority", "telegram-authority", "sms-residents",
                                                          "sms-hatta"]


def test_naming_an_exercise_channel_in_a_live_alert_says_why_it_is_refused(
    channels: tuple[ChannelConfig, ...]
) -> None:
    with pytest.raises(SelectionError) as caught:
        ids(channels, "sms-residents,sms-exercise", mode=Mode.LIVE)
    message = str(caught.value)
    assert "channel 'sms-exercise' is an exercise channel (exercise = true in channels.toml)" in message
    assert "a live alert never goes to a drill channel; use --exercise" in message
    with pytest.raises(SelectionError, match="a dry-run rehearses a live alert, which never goes to a drill"):
        ids(channels, "telegram-exercise", mode=Mode.DRY_RUN, areas=("DXB-HATTA",))


def test_a_live_selection_of_exercise_channels_only_matches_nothing_and_says_why(tmp_path: Path) -> None:
    pool = make_config(tmp_path, [chan("x-authority", "x"), chan("hook-drills", "webhook", exercise=True)]).channels
    with pytest.raises(SelectionError, match=r"no channel matches .*; exercise channels never take a live alert"):
        ids(pool, "kind:webhook", mode=Mode.LIVE)


def test_template_kinds_filter_the_selection(channels: tuple[ChannelConfig, ...]) -> None:
    assert ids(channels, "all", kinds=("telegram", "webhook")) == [
        "telegram-authority", "telegram-deira", "partner-hook", "telegram-exercise",
    ]
    assert ids(channels, "area:DXB-DEIRA", kinds=("sms",)) == ["sms-residents", "sms-exercise"]


def test_naming_a_channel_of_a_kind_the_template_skips_is_refused(channels: tuple[ChannelConfig, ...]) -> None:
    with pytest.raises(SelectionError, match="'x-authority': this template does not go to x channels"):
        ids(channels, "telegram-authority,x-authority", kinds=("telegram",))


def test_a_selection_that_matches_nothing_is_refused(channels: tuple[ChannelConfig, ...]) -> None:
    with pytest.raises(SelectionError, match="no channel matches"):
        ids(channels, "kind:x", kinds=("sms",))


def test_the_shipped_config_in_exercise_mode() -> None:
    config = load_config(ROOT / "channels.toml", KINDS)
    chosen = select_channels(config.channels, "all", kinds=ALL_KINDS, areas=(), mode=Mode.EXERCISE,
                             known_areas=KNOWN_AREAS)
    assert chosen and all(c.exercise for c in chosen)
    with pytest.raises(SelectionError, match="not an exercise channel"):
        select_channels(config.channels, "x-authority", kinds=ALL_KINDS, areas=(), mode=Mode.EXERCISE,
                        known_areas=KNOWN_AREAS)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChannelConfig, ...]:
    return make_config(tmp_path_factory.mktemp("selection"), [
        chan("a", "x"), chan("b", "telegram", areas=("DXB-DEIRA",)), chan("c", "sms", exercise=True),
        chan("d", "webhook", areas=("DXB-HATTA",), exercise=True), chan("e", "sms", areas=("DXB-MARINA",)),
        chan("f", "telegram", areas=("DXB-DEIRA", "DXB-HATTA"), exercise=True),
    ]).channels


@settings(max_examples=100, deadline=None)
@given(
    selection=st.one_of(st.just("all"), st.sampled_from([f"kind:{k}" for k in ALL_KINDS]),
                        st.sampled_from([f"area:{a}" for a in sorted(KNOWN_AREAS)])),
    kinds=st.sets(st.sampled_from(ALL_KINDS), min_size=1),
    mode=st.sampled_from([None, *Mode]),
    areas=st.lists(st.sampled_from(sorted(KNOWN_AREAS)), max_size=2).map(tuple),
)
def test_selection_keeps_exactly_the_channels_meeting_every_constraint(
    pool: tuple[ChannelConfig, ...], selection: str, kinds: set[str], mode: Mode | None, areas: tuple[str, ...],
) -> None:
    def wanted(channel: ChannelConfig) -> bool:
        covers = set(channel.areas)
        if selection.startswith("kind:") and channel.kind != selection.removeprefix("kind:"):
            return False
        if selection.startswith("area:") and not covers & {"*", selection.removeprefix("area:")}:
            return False
        if areas and not covers & {"*", *areas}:
            return False
        drills = {Mode.EXERCISE: channel.exercise, Mode.LIVE: not channel.exercise, Mode.DRY_RUN: not channel.exercise}
        return channel.kind in kinds and (mode is None or drills[mode])

    expected = [c.id for c in pool if wanted(c)]
    if not expected:
        with pytest.raises(SelectionError, match="channel matches"):
            ids(pool, selection, kinds=kinds, areas=areas, mode=mode)
    else:
        assert ids(pool, selection, kinds=kinds, areas=areas, mode=mode) == expected


@pytest.mark.parametrize(("typo", "meant"), [("DXB-DIERA", "DXB-DEIRA"), ("dxb-hatta", "DXB-HATTA"),
                                             ("DXB-MARNA", "DXB-MARINA"), ("ABU-DHABI", None)])
def test_an_area_a_channel_names_must_be_in_the_gazetteer(tmp_path: Path, typo: str, meant: str | None) -> None:
    """A typo would leave the channel silently out of every alert for that area: refused, naming it."""
    config = make_config(tmp_path, [chan("x-authority", "x"), chan("telegram-deira", "telegram", areas=("DXB", typo))])
    with pytest.raises(ConfigError) as caught:
        check_areas(config, KNOWN_AREAS, gazetteer="templates/gazetteer.toml")
    message = str(caught.value)
    assert message.startswith(f"{config.path}: channel 'telegram-deira': key 'areas': {typo!r} is not an area in "
                              "templates/gazetteer.toml")
    assert (f"did you mean {meant!r}?" in message) if meant else "did you mean" not in message
    assert "known: DXB, DXB-DEIRA, DXB-HATTA, DXB-MARINA" in message


def test_known_areas_and_everywhere_pass(tmp_path: Path) -> None:
    check_areas(make_config(tmp_path, [chan("a", "x", areas=("*", "DXB-HATTA"))]), KNOWN_AREAS)


@given(st.text(max_size=12))
def test_a_close_match_is_always_a_known_code(text: str) -> None:
    found = close_match(text, KNOWN_AREAS)
    assert found is None or found in KNOWN_AREAS


def test_a_fallback_only_channel_is_never_fired_directly(tmp_path: Path) -> None:
    """Named as another's `fallback`, a channel sends only what failover moves to it."""
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    config = make_config(tmp_path, [
        {**chan("sms-twilio", "sms"), "fallback": "sms-infobip"},
        {"id": "sms-infobip", "kind": "sms", "provider": "infobip", "base_url": "https://x.api.infobip.com",
         "api_key_env": "INFOBIP_API_KEY", "from": "CivilDefence", "recipients": "r.csv"},
        chan("hook", "webhook"),
    ])
    for selection in ("all", "kind:sms", "area:DXB"):
        chosen = select_channels(config.channels, selection, kinds=ALL_KINDS, areas=(), mode=Mode.LIVE,
                                 known_areas=KNOWN_AREAS)
        assert "sms-infobip" not in [c.id for c in chosen]
        assert "sms-twilio" in [c.id for c in chosen]
    with pytest.raises(SelectionError, match="channel 'sms-infobip' is the fallback of 'sms-twilio'"):
        select_channels(config.channels, "sms-infobip", kinds=ALL_KINDS, areas=(), mode=Mode.LIVE,
                        known_areas=KNOWN_AREAS)
    assert [c.id for c in config.with_fallbacks(config.channels[:1])] == ["sms-twilio", "sms-infobip"]

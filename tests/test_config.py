"""channels.toml: one clear error naming the file, the channel and the key; secrets are env NAMES."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.channels.registry import KINDS
from broadcaster.channels.sms import SmsOptions
from broadcaster.channels.telegram import Layout, TelegramChannel, TelegramOptions
from broadcaster.config import (
    DEFAULT_TOKEN_EXPIRY_S,
    RATE_PER_SECOND,
    TIMEOUT_S,
    bounded_number,
    load_config,
    token_expiry,
)
from broadcaster.errors import ConfigError
from broadcaster.states import OnUnknown
from tests.support import channel_config, make_config, write_config

ROOT = Path(__file__).resolve().parents[1]

X = {"id": "x-authority", "kind": "x", "api_key_env": "X_API_KEY", "api_secret_env": "X_API_SECRET",
     "access_token_env": "X_ACCESS_TOKEN", "access_secret_env": "X_ACCESS_SECRET"}
TELEGRAM = {"id": "telegram-authority", "kind": "telegram", "chat_id": "@authority_alerts",
            "token_env": "TELEGRAM_TOKEN"}
SMS = {"id": "sms-residents", "kind": "sms", "account_sid_env": "TWILIO_ACCOUNT_SID",
       "auth_token_env": "TWILIO_AUTH_TOKEN", "from": "+15005550006", "recipients": "recipients/residents.csv"}
WEBHOOK = {"id": "partner-hook", "kind": "webhook", "url": "https://partner.example/alerts",
           "secret_env": "PARTNER_HOOK_SECRET"}
BY_KIND = {"x": X, "telegram": TELEGRAM, "sms": SMS, "webhook": WEBHOOK}
REQUIRED = [
    ("x", "api_key_env"), ("x", "api_secret_env"), ("x", "access_token_env"), ("x", "access_secret_env"),
    ("telegram", "chat_id"), ("telegram", "token_env"),
    ("sms", "account_sid_env"), ("sms", "auth_token_env"), ("sms", "recipients"),
    ("webhook", "url"), ("webhook", "secret_env"),
]


def refused(tmp_path: Path, channels: list[dict[str, Any]], **top: Any) -> str:
    path = write_config(tmp_path, channels, **top)
    with pytest.raises(ConfigError) as caught:
        load_config(path, KINDS)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    return message


def test_the_shipped_channels_toml_loads() -> None:
    config = load_config(ROOT / "channels.toml", KINDS)
    ids = [c.id for c in config.channels]
    assert ids[:5] == ["x-authority", "telegram-authority", "telegram-police-en", "sms-residents", "partner-hook"]
    assert {"x", "telegram", "sms", "webhook", "whatsapp", "email", "facebook", "instagram"} <= {
        c.kind for c in config.channels}
    assert config.sender == "alerts.example.gov"
    assert config.timezone.key == "Asia/Dubai"
    assert config.token_expiry_s == 90 * 86400
    assert config.templates_dir == ROOT / "templates"
    assert Path(config.database) == ROOT / "var" / "broadcaster.db"
    exercise = [c.id for c in config.channels if c.exercise]
    assert {"sms-exercise", "telegram-exercise", "whatsapp-exercise", "email-exercise", "facebook-exercise",
            "instagram-exercise"} <= set(exercise)
    assert config.public_url == "https://alerts.example.gov"
    assert config.authority == {"ar": "هيئة الطوارئ والأزمات", "en": "Emergency and Crisis Authority"}
    sms = config.channel("sms-residents")
    assert sms.recipients == ROOT / "recipients" / "residents.csv"
    assert sms.options_of(SmsOptions).max_segments == 4
    assert sms.rate_per_second == 10
    police = config.channel("telegram-police-en")
    assert police.languages == ("en",)
    assert police.options_of(TelegramOptions).layout is Layout.SEPARATE
    assert police.recipients is None
    for channel in config.channels:
        assert channel.secret_env_names()
        assert all(name.isupper() for name in channel.secret_env_names().values())


def test_defaults_fill_in_what_a_channel_leaves_out(tmp_path: Path) -> None:
    channel = channel_config(tmp_path, **TELEGRAM)
    assert channel.languages == ("ar", "en")
    assert channel.areas == ("*",)
    assert channel.exercise is False
    assert channel.api_base is None
    assert channel.rate_per_second == TelegramChannel.default_rate_per_second
    options = channel.options_of(TelegramOptions)
    assert (options.layout, options.on_unknown) == (Layout.COMBINED, OnUnknown.RESEND)


def test_languages_are_put_arabic_first(tmp_path: Path) -> None:
    assert channel_config(tmp_path, **X, languages=["en", "ar"]).languages == ("ar", "en")


@pytest.mark.parametrize("languages", [[], ["fr"], ["ar", "ar"], "ar"])
def test_bad_languages_are_refused(tmp_path: Path, languages: Any) -> None:
    assert "key 'languages'" in refused(tmp_path, [{**X, "languages": languages}])


def test_missing_broadcaster_table(tmp_path: Path) -> None:
    path = tmp_path / "channels.toml"
    path.write_text('[[channel]]\nid = "x"\nkind = "webhook"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"missing \[broadcaster\] table") as caught:
        load_config(path, KINDS)
    assert caught.value.where == str(path)


def test_unknown_top_level_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, [WEBHOOK])
    path.write_text(path.read_text(encoding="utf-8") + "\n[[channels]]\nid = \"typo\"\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown top-level table.*channels"):
        load_config(path, KINDS)


@pytest.mark.parametrize("top", [{"timezone": "Gulf/Nowhere"}, {"sender": ""}, {"databse": "x.db"}])
def test_bad_broadcaster_settings(tmp_path: Path, top: dict[str, Any]) -> None:
    message = refused(tmp_path, [WEBHOOK], **top)
    assert "[broadcaster]" in message
    assert next(iter(top)) in message


def test_token_expiry_is_a_duration_of_at_least_a_minute(tmp_path: Path) -> None:
    assert make_config(tmp_path, [WEBHOOK]).token_expiry_s == DEFAULT_TOKEN_EXPIRY_S == 90 * 86400
    assert make_config(tmp_path, [WEBHOOK], token_expiry="12h").token_expiry_s == 12 * 3600
    assert make_config(tmp_path, [WEBHOOK], token_expiry="P30D").token_expiry_s == 30 * 86400
    for bad, why in (("forever", "not a duration"), ("30s", "shorter than a minute"), (90, "as a string")):
        message = refused(tmp_path, [WEBHOOK], token_expiry=bad)
        assert "[broadcaster]" in message and "key 'token_expiry'" in message and why in message


@given(days=st.integers(0, 3650), hours=st.integers(0, 23), minutes=st.integers(0, 59))
def test_token_expiry_reads_every_days_hours_minutes_form(days: int, hours: int, minutes: int) -> None:
    text = f"{days}d{hours}h{minutes}m"
    seconds = days * 86400 + hours * 3600 + minutes * 60
    if seconds < 60:
        with pytest.raises(ConfigError, match="token_expiry"):
            token_expiry(text, "channels.toml: [broadcaster]")
    else:
        assert token_expiry(text, "channels.toml: [broadcaster]") == seconds


@given(st.text(max_size=12))
def test_token_expiry_never_accepts_less_than_a_minute_or_fails_unnamed(text: str) -> None:
    try:
        seconds = token_expiry(text, "channels.toml: [broadcaster]")
    except ConfigError as exc:
        assert str(exc).startswith("channels.toml: [broadcaster]: key 'token_expiry'")
    else:
        assert seconds >= 60


def test_no_channels(tmp_path: Path) -> None:
    assert "no [[channel]] tables" in refused(tmp_path, [])


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "channels.toml"
    path.write_text('[broadcaster]\nsender = "a"\ntimezone = "Asia/Dubai\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 3") as caught:
        load_config(path, KINDS)
    assert caught.value.where == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", KINDS)


def test_a_folder_or_a_latin1_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(ConfigError, match="file is a folder, not a file") as caught:
        load_config(tmp_path / "folder.toml", KINDS)
    assert caught.value.where == str(tmp_path / "folder.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[broadcaster]\nsender = "Caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"line 2, column 14: byte 0xE9 is not UTF-8; the file must be UTF-8"):
        load_config(latin, KINDS)


def test_unknown_kind_names_the_channel(tmp_path: Path) -> None:
    message = refused(tmp_path, [{"id": "fax-line", "kind": "fax"}])
    assert "channel 'fax-line'" in message
    assert "key 'kind': 'fax' is not one of x, telegram, sms, webhook" in message


@pytest.mark.parametrize(("kind", "key"), REQUIRED, ids=[f"{k}-{key}" for k, key in REQUIRED])
def test_a_missing_required_key_names_file_channel_and_key(tmp_path: Path, kind: str, key: str) -> None:
    table = {k: v for k, v in BY_KIND[kind].items() if k != key}
    message = refused(tmp_path, [table])
    assert f"channel {table['id']!r}" in message
    assert f"key {key!r} is required for kind {kind!r}" in message


@pytest.mark.parametrize(("table", "typo"), [({**SMS, "exercize": True}, "exercize"),
                                             ({**TELEGRAM, "token": "TELEGRAM_TOKEN"}, "token"),
                                             ({**X, "chat_id": "@x"}, "chat_id"),
                                             ({**WEBHOOK, "rate_per_sec": 5}, "rate_per_sec")])
def test_an_unknown_key_is_refused(tmp_path: Path, table: dict[str, Any], typo: str) -> None:
    message = refused(tmp_path, [table])
    assert f"channel {table['id']!r}" in message
    assert f"unknown key {typo!r}" in message
    assert "exercise" in message  # the known keys are listed


def test_duplicate_channel_ids(tmp_path: Path) -> None:
    message = refused(tmp_path, [TELEGRAM, X, {**WEBHOOK, "id": "telegram-authority"}])
    assert "channel 'telegram-authority': key 'id': duplicate channel id" in message


@pytest.mark.parametrize("channel_id", ["a,b", "kind:sms", "area:DXB", " x", "x y", ""])
def test_a_channel_id_that_a_selection_could_not_name_is_refused(tmp_path: Path, channel_id: str) -> None:
    assert "key 'id'" in refused(tmp_path, [{**WEBHOOK, "id": channel_id}])


@pytest.mark.parametrize(("kind", "key"), [("telegram", "token_env"), ("x", "api_secret_env"),
                                           ("sms", "auth_token_env"), ("webhook", "secret_env")])
@pytest.mark.parametrize("value", ["123456:AAE-secret-token", "sk_live_abcdef", "my token", "telegram_token"])
def test_a_secret_value_where_an_env_name_belongs_is_refused(tmp_path: Path, kind: str, key: str,
                                                             value: str) -> None:
    message = refused(tmp_path, [{**BY_KIND[kind], key: value}])
    assert f"key {key!r} must name an environment variable" in message
    assert value not in message  # the leaked secret is not echoed back


@pytest.mark.parametrize("api_base", ["api.telegram.org", "ftp://api.example", "https://", "http:///path",
                                      "https://api example.com", "", 443])
def test_a_bad_api_base_is_refused(tmp_path: Path, api_base: Any) -> None:
    message = refused(tmp_path, [{**TELEGRAM, "api_base": api_base}])
    assert "channel 'telegram-authority'" in message
    assert "key 'api_base': must be an http(s) URL" in message


def test_api_base_is_kept_without_a_trailing_slash(tmp_path: Path) -> None:
    channel = channel_config(tmp_path, **TELEGRAM, api_base="http://127.0.0.1:8081/tg/")
    assert channel.api_base == "http://127.0.0.1:8081/tg"


@pytest.mark.parametrize("url", ["partner.example/alerts", "https://", "mailto:ops@partner.example"])
def test_a_bad_webhook_url_is_refused(tmp_path: Path, url: str) -> None:
    assert "key 'url': must be an http(s) URL" in refused(tmp_path, [{**WEBHOOK, "url": url}])


def test_sms_needs_exactly_one_sender(tmp_path: Path) -> None:
    both = refused(tmp_path, [{**SMS, "messaging_service_sid": "MG0123456789abcdef0123456789abcdef"}])
    assert "channel 'sms-residents'" in both
    assert "set exactly one of 'from' or 'messaging_service_sid'" in both
    neither = refused(tmp_path, [{k: v for k, v in SMS.items() if k != "from"}])
    assert "set exactly one of 'from' or 'messaging_service_sid'" in neither


def test_sms_with_a_messaging_service_loads(tmp_path: Path) -> None:
    table = {k: v for k, v in SMS.items() if k != "from"}
    channel = channel_config(tmp_path, **table, messaging_service_sid="MG0123456789abcdef0123456789abcdef")
    options = channel.options_of(SmsOptions)
    assert options.messaging_service_sid is not None and options.messaging_service_sid.startswith("MG")
    assert options.from_ is None


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"max_segments": 0}, "max_segments"), ({"max_segments": 11}, "max_segments"),
        ({"rate_per_second": 0}, "rate_per_second"), ({"rate_per_second": True}, "rate_per_second"),
        ({"timeout_s": -1}, "timeout_s"), ({"exercise": "yes"}, "exercise"), ({"areas": []}, "areas"),
        ({"areas": "*"}, "areas"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, extra: dict[str, Any], key: str) -> None:
    message = refused(tmp_path, [{**SMS, **extra}])
    assert f"channel 'sms-residents': key {key!r}" in message


@pytest.mark.parametrize(("key", "value"), [
    ("rate_per_second", math.nan), ("rate_per_second", math.inf), ("rate_per_second", -math.inf),
    ("rate_per_second", 1e-9), ("rate_per_second", -5), ("rate_per_second", 10**9),
    ("timeout_s", math.nan), ("timeout_s", math.inf), ("timeout_s", 0.001), ("timeout_s", 86400),
])
def test_a_number_outside_its_bounds_is_refused_saying_the_bounds(tmp_path: Path, key: str, value: float) -> None:
    """TOML reads nan and inf; 1e-9 messages a second would hold an alert (and a dry-run) for 30 years."""
    message = refused(tmp_path, [{**SMS, key: value}])
    bounds = RATE_PER_SECOND if key == "rate_per_second" else TIMEOUT_S
    assert f"channel 'sms-residents': key {key!r}: must be a number from {bounds.low:g} to {bounds.high:g}" in message
    assert f"not {value!r}" in message


def test_the_bounds_themselves_load(tmp_path: Path) -> None:
    slow = channel_config(tmp_path, **{**SMS, "rate_per_second": 0.001, "timeout_s": 300})
    assert (slow.rate_per_second, slow.timeout_s) == (0.001, 300.0)
    fast = channel_config(tmp_path, **{**SMS, "rate_per_second": 100_000, "timeout_s": 0.1})
    assert (fast.rate_per_second, fast.timeout_s) == (100_000.0, 0.1)


@given(st.one_of(st.floats(), st.integers(), st.booleans(), st.text(max_size=5), st.none()))
def test_a_numeric_key_is_a_finite_number_in_bounds_or_an_error_naming_it(value: object) -> None:
    try:
        number = bounded_number({"rate_per_second": value}, "rate_per_second", 1.0, RATE_PER_SECOND, "here")
    except ConfigError as exc:
        assert str(exc).startswith("here: key 'rate_per_second': must be a number from 0.001 to 100000")
        return
    assert math.isfinite(number) and RATE_PER_SECOND.low <= number <= RATE_PER_SECOND.high


@pytest.mark.parametrize(("extra", "key"), [({"layout": "both"}, "layout"), ({"on_unknown": "retry"}, "on_unknown")])
def test_bad_telegram_options(tmp_path: Path, extra: dict[str, Any], key: str) -> None:
    assert f"key {key!r}" in refused(tmp_path, [{**TELEGRAM, **extra}])


def test_secret_reads_the_environment_and_is_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = "123456:AAE-very-secret-token"
    monkeypatch.setenv("TELEGRAM_TOKEN", value)
    channel = channel_config(tmp_path, **TELEGRAM)
    secret = channel.secret("token_env")
    assert secret.reveal() == value
    assert secret.env_name == "TELEGRAM_TOKEN"
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]), repr(channel)):
        assert value not in shown
    assert "TELEGRAM_TOKEN" in repr(secret)
    assert channel.missing_env() == []


def test_secrets_are_read_when_needed_not_when_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_TOKEN", raising=False)
    channel = channel_config(tmp_path, **TELEGRAM)  # loading needs no secret: dry-runs work without them
    monkeypatch.setenv("TELEGRAM_TOKEN", "later-value")
    assert channel.secret("token_env").reveal() == "later-value"


def test_a_missing_env_var_is_named_and_no_value_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC-this-one-is-set-and-secret")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    channel = channel_config(tmp_path, **SMS)
    with pytest.raises(ConfigError) as caught:
        channel.secret("auth_token_env")
    message = str(caught.value)
    assert "TWILIO_AUTH_TOKEN" in message
    assert "channel 'sms-residents'" in message and "'auth_token_env'" in message
    assert "AC-this-one-is-set-and-secret" not in message
    assert channel.missing_env() == [("auth_token_env", "TWILIO_AUTH_TOKEN")]


def test_an_empty_env_var_counts_as_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_HOOK_SECRET", "")
    channel = channel_config(tmp_path, **WEBHOOK)
    with pytest.raises(ConfigError, match="PARTNER_HOOK_SECRET is not set"):
        channel.secret("secret_env")


def test_secret_of_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key 'token_env' is missing"):
        channel_config(tmp_path, **WEBHOOK).secret("token_env")


def test_unknown_channel_lookup(tmp_path: Path) -> None:
    config = make_config(tmp_path, [TELEGRAM])
    with pytest.raises(ConfigError, match="no channel with id 'nope'"):
        config.channel("nope")


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = make_config(folder, [SMS], database="../var/db.sqlite", templates="../templates")
    assert Path(config.database) == (tmp_path / "var" / "db.sqlite").resolve()
    assert config.templates_dir == (tmp_path / "templates").resolve()
    assert config.channels[0].recipients == (folder / "recipients" / "residents.csv").resolve()


def test_a_database_url_is_kept_as_is(tmp_path: Path) -> None:
    config = make_config(tmp_path, [TELEGRAM], database="postgresql://db.internal/alerts")
    assert config.database == "postgresql://db.internal/alerts"


def test_covers_area(tmp_path: Path) -> None:
    everywhere = channel_config(tmp_path, **TELEGRAM)
    deira = channel_config(tmp_path, **{**TELEGRAM, "areas": ["DXB-DEIRA"]})
    assert everywhere.covers_area("DXB-HATTA")
    assert deira.covers_area("DXB-DEIRA") and not deira.covers_area("DXB-HATTA")


@pytest.mark.parametrize(("table", "top", "key"), [
    ({**SMS, "recipients": "resid<NUL>ents.csv"}, {}, "recipients"),
    (WEBHOOK, {"templates": "tem<NUL>plates"}, "templates"),
])
def test_a_path_no_file_system_can_hold_is_refused_naming_the_key(
    tmp_path: Path, table: dict[str, Any], top: dict[str, Any], key: str
) -> None:
    # TOML allows the escape "\u0000" in a string; no file system allows NUL in a path.
    path = write_config(tmp_path, [table], **top)
    path.write_text(path.read_text(encoding="utf-8").replace("<NUL>", "\\u0000"), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"key {key!r}: .* is not a usable path") as caught:
        load_config(path, KINDS)
    assert str(caught.value).startswith(str(path))


def test_only_the_kinds_given_are_known(tmp_path: Path) -> None:
    path = write_config(tmp_path, [WEBHOOK, X])
    with pytest.raises(ConfigError, match=r"channel 'x-authority': key 'kind': 'x' is not one of webhook"):
        load_config(path, {"webhook": KINDS["webhook"]})


def test_options_of_another_kind_is_a_programming_error(tmp_path: Path) -> None:
    channel = channel_config(tmp_path, **TELEGRAM)
    assert channel.options_of(TelegramOptions).chat_id == "@authority_alerts"
    with pytest.raises(TypeError, match="not SmsOptions"):
        channel.options_of(SmsOptions)


@pytest.mark.parametrize("authority, expected", [
    ('{ ar = "شرطة دبي", en = "Dubai Police" }', {"ar": "شرطة دبي", "en": "Dubai Police"}),
    ('{ ar = "شرطة دبي" }', None), ('"Dubai Police"', None), ('{ ar = "شرطة دبي", en = " " }', None),
])
def test_the_issuing_authority_is_named_in_both_languages_or_refused(tmp_path: Path, authority: str,
                                                                     expected: dict[str, str] | None) -> None:
    path = write_config(tmp_path, [{"id": "w", "kind": "webhook", "url": "https://p.example/a", "secret_env": "S"}])
    text = path.read_text(encoding="utf-8").replace("[broadcaster]\n", f"[broadcaster]\nauthority = {authority}\n")
    path.write_text(text, encoding="utf-8")
    if expected is None:
        with pytest.raises(ConfigError, match=r"\[broadcaster\]: key 'authority'"):
            load_config(path, KINDS)
    else:
        assert load_config(path, KINDS).authority == expected


def test_contact_is_read_per_language_and_a_bad_one_is_named(tmp_path: Path) -> None:
    contact = {"ar": "مركز الاتصال", "en": "Call centre"}
    assert make_config(tmp_path, [TELEGRAM], contact=contact).contact == contact
    assert make_config(tmp_path, [TELEGRAM]).contact is None  # CAP <contact> falls back to the authority, then sender
    message = refused(tmp_path, [TELEGRAM], contact="Call centre")
    assert "key 'contact'" in message and "ar =" in message

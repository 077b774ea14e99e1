"""Load and validate ``channels.toml``.

Every error names the file, the channel id and the key. Secrets are never read
from the file: it holds only the *names* of environment variables, resolved
lazily through :meth:`ChannelConfig.secret` when a real send needs them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broadcaster.errors import ConfigError
from broadcaster.secret import Secret

KINDS: Final = ("x", "telegram", "sms", "webhook")
LANGUAGES: Final = ("ar", "en")
_CHANNEL_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_COMMON_KEYS: Final = {
    "id", "kind", "languages", "areas", "exercise", "api_base", "rate_per_second", "timeout_s", "name",
}
# key -> required?  Secret keys end in "_env" and name environment variables.
_KIND_KEYS: Final[dict[str, dict[str, bool]]] = {
    "x": {"api_key_env": True, "api_secret_env": True, "access_token_env": True, "access_secret_env": True},
    "telegram": {"chat_id": True, "token_env": True, "layout": False, "on_unknown": False},
    "sms": {
        "account_sid_env": True, "auth_token_env": True, "from": False, "messaging_service_sid": False,
        "recipients": True, "max_segments": False,
    },
    "webhook": {"url": True, "secret_env": True},
}
# Conservative defaults, in messages per second, for when a channel sets none.
DEFAULT_RATE: Final = {"x": 1.0, "telegram": 1.0, "sms": 10.0, "webhook": 10.0}
DEFAULT_SMS_MAX_SEGMENTS: Final = 4


@dataclass(frozen=True)
class ChannelConfig:
    """One ``[[channel]]`` table, checked. ``options`` keeps the kind's own keys."""

    id: str
    kind: str
    languages: tuple[str, ...]
    areas: tuple[str, ...]
    exercise: bool
    api_base: str | None
    rate_per_second: float
    timeout_s: float
    options: Mapping[str, Any]
    source: Path
    base_dir: Path

    @property
    def where(self) -> str:
        return f"{self.source}: channel {self.id!r}"

    def secret_env_names(self) -> dict[str, str]:
        """``{key: ENV_NAME}`` for every secret this channel needs."""
        return {k: v for k, v in self.options.items() if k.endswith("_env")}

    def missing_env(self) -> list[tuple[str, str]]:
        """``(key, ENV_NAME)`` pairs whose environment variable is unset or empty."""
        return [(k, v) for k, v in self.secret_env_names().items() if not os.environ.get(v)]

    def secret(self, key: str) -> Secret:
        """Read the secret named by ``key`` (e.g. ``token_env``) from the environment."""
        env_name = self.options.get(key)
        if not isinstance(env_name, str):
            raise ConfigError(f"key {key!r} is missing", where=self.where)
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"key {key!r}: environment variable {env_name} is not set", where=self.where)
        return Secret(value, env_name)

    def path(self, key: str) -> Path:
        """A path option, resolved against the directory of channels.toml."""
        return (self.base_dir / str(self.options[key])).resolve()

    def covers_area(self, area: str) -> bool:
        return "*" in self.areas or area in self.areas


@dataclass(frozen=True)
class Config:
    """The whole of channels.toml."""

    path: Path
    sender: str
    timezone: ZoneInfo
    database: str
    templates_dir: Path
    runbooks_dir: Path
    public_url: str | None
    channels: tuple[ChannelConfig, ...] = field(default=())

    def channel(self, channel_id: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.id == channel_id:
                return channel
        raise ConfigError(f"no channel with id {channel_id!r}", where=str(self.path))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Parse and validate channels.toml; raise one ConfigError naming file, channel and key."""
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(source)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(source)) from None
    base_dir = source.resolve().parent
    where = str(source)

    unknown_top = set(raw) - {"broadcaster", "channel"}
    if unknown_top:
        raise ConfigError(f"unknown top-level table(s): {', '.join(sorted(unknown_top))}", where=where)
    top = raw.get("broadcaster")
    if not isinstance(top, dict):
        raise ConfigError("missing [broadcaster] table", where=where)
    known_top = {"sender", "timezone", "database", "templates", "runbooks", "public_url"}
    for key in top:
        if key not in known_top:
            raise ConfigError(f"[broadcaster]: unknown key {key!r}", where=where)
    sender = _require_str(top, "sender", f"{where}: [broadcaster]")
    tz_name = _require_str(top, "timezone", f"{where}: [broadcaster]")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[broadcaster]: key 'timezone': unknown time zone {tz_name!r}", where=where) from None
    database = str(top.get("database", "var/broadcaster.db"))
    if "://" not in database:
        database = str((base_dir / database).resolve())
    public_url = top.get("public_url")

    tables = raw.get("channel", [])
    if not isinstance(tables, list) or not tables:
        raise ConfigError("no [[channel]] tables: declare at least one channel", where=where)
    channels: list[ChannelConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        channel = _channel(table, index, source, base_dir)
        if channel.id in seen:
            raise ConfigError(f"channel {channel.id!r}: key 'id': duplicate channel id", where=where)
        seen.add(channel.id)
        channels.append(channel)

    return Config(
        path=source,
        sender=sender,
        timezone=timezone,
        database=database,
        templates_dir=(base_dir / str(top.get("templates", "templates"))).resolve(),
        runbooks_dir=(base_dir / str(top.get("runbooks", "runbooks"))).resolve(),
        public_url=str(public_url) if public_url else None,
        channels=tuple(channels),
    )


def _is_http_url(value: Any) -> bool:
    """An http(s) URL with a host: "https://" alone would only fail at send time."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return False
    try:
        return bool(urlsplit(value).hostname) and not any(c.isspace() for c in value)
    except ValueError:
        return False


def _require_str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"key {key!r} must be a non-empty string", where=where)
    return value


def _channel(table: Any, index: int, source: Path, base_dir: Path) -> ChannelConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"[[channel]] #{index} is not a table", where=str(source))
    raw_id = table.get("id")
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise ConfigError(f"[[channel]] #{index}: key 'id' must be a non-empty string", where=str(source))
    where = f"{source}: channel {raw_id!r}"
    if not _CHANNEL_ID.match(raw_id):
        # Selections split on "," and read "kind:"/"area:" prefixes, so an id must hold neither.
        raise ConfigError("key 'id': use letters, digits, '-', '_' and '.' only", where=where)
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"key 'kind': {kind!r} is not one of {', '.join(KINDS)}", where=where)
    kind_keys = _KIND_KEYS[kind]
    for key in table:
        if key not in _COMMON_KEYS and key not in kind_keys:
            allowed = ", ".join(sorted(_COMMON_KEYS | set(kind_keys)))
            raise ConfigError(f"unknown key {key!r} for kind {kind!r} (known: {allowed})", where=where)
    for key, required in kind_keys.items():
        if required and key not in table:
            raise ConfigError(f"key {key!r} is required for kind {kind!r}", where=where)
        if key in table and key.endswith("_env"):
            value = table[key]
            if not isinstance(value, str) or not value.isidentifier() or not value.isupper():
                raise ConfigError(
                    f"key {key!r} must name an environment variable (UPPER_CASE), not hold a value",
                    where=where,
                )

    languages = tuple(table.get("languages", LANGUAGES))
    if not languages or any(lang not in LANGUAGES for lang in languages) or len(set(languages)) != len(languages):
        raise ConfigError(f"key 'languages': must be a list drawn from {list(LANGUAGES)}", where=where)
    # Arabic first, whatever order the file used.
    languages = tuple(lang for lang in LANGUAGES if lang in languages)
    areas = table.get("areas", ["*"])
    if not isinstance(areas, list) or not areas or not all(isinstance(a, str) and a for a in areas):
        raise ConfigError("key 'areas': must be a non-empty list of area codes or \"*\"", where=where)
    exercise = table.get("exercise", False)
    if not isinstance(exercise, bool):
        raise ConfigError("key 'exercise': must be true or false", where=where)
    api_base = table.get("api_base")
    if api_base is not None and not _is_http_url(api_base):
        raise ConfigError("key 'api_base': must be an http(s) URL", where=where)
    rate = table.get("rate_per_second", DEFAULT_RATE[kind])
    if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
        raise ConfigError("key 'rate_per_second': must be a positive number", where=where)
    timeout_s = table.get("timeout_s", 10.0)
    if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise ConfigError("key 'timeout_s': must be a positive number of seconds", where=where)

    options = {k: v for k, v in table.items() if k in kind_keys}
    if kind == "sms":
        has_from, has_service = "from" in table, "messaging_service_sid" in table
        if has_from == has_service:
            raise ConfigError("set exactly one of 'from' or 'messaging_service_sid'", where=where)
        segments = table.get("max_segments", DEFAULT_SMS_MAX_SEGMENTS)
        if not isinstance(segments, int) or isinstance(segments, bool) or not 1 <= segments <= 10:
            raise ConfigError("key 'max_segments': must be a whole number from 1 to 10", where=where)
        options["max_segments"] = segments
    if kind == "telegram":
        layout = table.get("layout", "combined")
        if layout not in ("combined", "separate"):
            raise ConfigError("key 'layout': must be \"combined\" or \"separate\"", where=where)
        options["layout"] = layout
        on_unknown = table.get("on_unknown", "resend")
        if on_unknown not in ("resend", "hold"):
            raise ConfigError("key 'on_unknown': must be \"resend\" or \"hold\"", where=where)
        options["on_unknown"] = on_unknown
    if kind == "webhook":
        url = table.get("url")
        if not _is_http_url(url):
            raise ConfigError("key 'url': must be an http(s) URL", where=where)

    return ChannelConfig(
        id=raw_id,
        kind=kind,
        languages=languages,
        areas=tuple(areas),
        exercise=exercise,
        api_base=api_base.rstrip("/") if isinstance(api_base, str) else None,
        rate_per_second=float(rate),
        timeout_s=float(timeout_s),
        options=options,
        source=source,
        base_dir=base_dir,
    )

"""Load and validate ``channels.toml``.

This module knows only the keys every channel shares (``id``, ``kind``,
``languages``, ``areas``, ``exercise``, ``api_base``, ``rate_per_second``,
``timeout_s``, ``name``). Each kind's own keys are parsed by that kind
(``parse_options`` on its class in ``broadcaster.channels``) into a frozen
:class:`KindOptions`, using :class:`KindTable` so that every kind words its
errors the same way. The kinds reach :func:`load_config` by injection: this
module sits below ``broadcaster.channels`` and never imports it.

Every error names the file, the channel id and the key. Secrets are never read
from the file: it holds only the *names* of environment variables, resolved
lazily through :meth:`ChannelConfig.secret` when a real send needs them.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broadcaster.errors import ConfigError
from broadcaster.recipients import ListFormat
from broadcaster.secret import Secret
from broadcaster.text.files import FileProblem, read_text
from broadcaster.timefmt import DurationError, parse_duration

LANGUAGES: Final = ("ar", "en")
# How long an API token lives when ``broadcaster users add`` / ``rotate`` is given no --expires.
DEFAULT_TOKEN_EXPIRY_S: Final = 90 * 86400.0
COMMON_KEYS: Final = frozenset({
    "id", "kind", "languages", "areas", "exercise", "api_base", "rate_per_second", "timeout_s", "name",
})
# The keys of the [broadcaster] table (docs/configuration.md documents each; tests/test_configuration_doc.py checks).
SETTINGS_KEYS: Final = frozenset({
    "sender", "timezone", "database", "templates", "runbooks", "public_url", "token_expiry", "max_clock_skew_s",
    "authority", "contact", "cap_signing_key", "cap_signing_cert",
})
DEFAULT_MAX_CLOCK_SKEW_S: Final = 60.0
_CHANNEL_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

OptionsT = TypeVar("OptionsT", bound="KindOptions")
ChoiceT = TypeVar("ChoiceT", bound=StrEnum)


@dataclass(frozen=True, kw_only=True)
class KindOptions:
    """A kind's own keys of one ``[[channel]]`` table, checked and typed.

    Each kind subclasses it as a frozen dataclass. Fields named ``*_env`` hold the
    NAMES of environment variables with the channel's secrets (never the values).
    """

    def secret_envs(self) -> dict[str, str]:
        """``{key: ENV_NAME}`` for every secret this channel needs (its ``*_env`` fields that are set)."""
        named = ((f.name, getattr(self, f.name)) for f in fields(self) if f.name.endswith("_env"))
        return {key: env for key, env in named if isinstance(env, str)}


@dataclass(frozen=True, kw_only=True)
class RecipientListOptions(KindOptions):
    """Options of a kind that sends one message per recipient from a list (SMS, WhatsApp, email).

    ``recipients`` is already resolved against the folder of channels.toml. The
    kind says what its list holds (``list_format``) and what its provider writes
    before each address (``address_prefix``, e.g. ``whatsapp:``): a delivery's
    recipient is the prefix and the address, so one phone on an SMS list and on a
    WhatsApp list is two recipients of one alert, never one.
    """

    recipients: Path
    list_format: ClassVar[ListFormat] = ListFormat.PHONE
    address_prefix: ClassVar[str] = ""


@dataclass(frozen=True, kw_only=True)
class CircuitOptions:
    """A channel's circuit breaker (``circuit = { failures, window_s, cooldown_s }``; engine.circuit runs it).

    It opens after ``failures`` timeouts or server errors in a row, all within
    ``window_s``; it stays open ``cooldown_s``, then lets one trial request through.
    """

    failures: int = 5
    window_s: float = 30.0
    cooldown_s: float = 60.0


class KindParser(Protocol):
    """What :func:`load_config` needs from a channel kind (its class in ``broadcaster.channels``)."""

    @property
    def default_rate_per_second(self) -> float:
        """Messages per second when a channel sets no ``rate_per_second``."""

    def parse_options(self, table: Mapping[str, Any], *, where: str, base_dir: Path) -> KindOptions:
        """The kind's own keys of ``table``, checked; raise ConfigError naming ``where`` and the key."""


@dataclass(frozen=True)
class ChannelConfig:
    """One ``[[channel]]`` table, checked. ``options`` holds the kind's own keys, typed."""

    id: str
    kind: str
    languages: tuple[str, ...]
    areas: tuple[str, ...]
    exercise: bool
    api_base: str | None
    rate_per_second: float
    timeout_s: float
    options: KindOptions
    source: Path
    base_dir: Path

    @property
    def where(self) -> str:
        return f"{self.source}: channel {self.id!r}"

    def options_of(self, kind_options: type[OptionsT]) -> OptionsT:
        """``options`` as the kind's own type; a kind calls this with its options class.

        Raises TypeError when the channel is of another kind (a programming error, not bad input).
        """
        if not isinstance(self.options, kind_options):
            raise TypeError(f"{self.where} has {type(self.options).__name__}, not {kind_options.__name__}")
        return self.options

    @property
    def recipients(self) -> Path | None:
        """The recipient list of a per-recipient kind (SMS, WhatsApp, email); None for a kind that posts once."""
        return self.options.recipients if isinstance(self.options, RecipientListOptions) else None

    @property
    def list_format(self) -> ListFormat:
        """What the recipient list holds (phones unless the kind says otherwise)."""
        return self.options.list_format if isinstance(self.options, RecipientListOptions) else ListFormat.PHONE

    @property
    def address_prefix(self) -> str:
        """What the provider wants before each address of the list (``whatsapp:``), or ""."""
        return self.options.address_prefix if isinstance(self.options, RecipientListOptions) else ""

    def secret_env_names(self) -> dict[str, str]:
        """``{key: ENV_NAME}`` for every secret this channel needs."""
        return self.options.secret_envs()

    def missing_env(self) -> list[tuple[str, str]]:
        """``(key, ENV_NAME)`` pairs whose environment variable is unset or empty."""
        return [(k, v) for k, v in self.secret_env_names().items() if not os.environ.get(v)]

    def secret(self, key: str) -> Secret:
        """Read the secret named by ``key`` (e.g. ``token_env``) from the environment."""
        env_name = self.secret_env_names().get(key)
        if env_name is None:
            raise ConfigError(f"key {key!r} is missing", where=self.where)
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"key {key!r}: environment variable {env_name} is not set", where=self.where)
        return Secret(value, env_name)

    def covers_area(self, area: str) -> bool:
        return "*" in self.areas or area in self.areas

    @property
    def fallback(self) -> str | None:
        """The id of the channel this one's pending deliveries move to when its circuit opens (SMS), or None."""
        value = getattr(self.options, "fallback", None)
        return value if isinstance(value, str) else None

    @property
    def circuit(self) -> CircuitOptions:
        value = getattr(self.options, "circuit", None)
        return value if isinstance(value, CircuitOptions) else CircuitOptions()


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
    token_expiry_s: float = DEFAULT_TOKEN_EXPIRY_S  # [broadcaster] token_expiry
    # A fire refuses to start when this host's clock and the database's differ by more (app.fire.plan_request).
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    authority: Mapping[str, str] | None = None  # the issuing authority's name per language (alert cards)
    # Who the public may contact about an alert, per language (CAP <contact>); default: the authority, else sender.
    contact: Mapping[str, str] | None = None
    # The PEM key and certificate every CAP document is signed with (broadcaster.cap_signing); None: unsigned.
    cap_signing_key: Path | None = None
    cap_signing_cert: Path | None = None

    def channel(self, channel_id: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.id == channel_id:
                return channel
        raise ConfigError(f"no channel with id {channel_id!r}", where=str(self.path))

    def fallback_only(self) -> frozenset[str]:
        """Channels named as another's ``fallback``: never fired directly, they send only what is moved to them."""
        return frozenset(c.fallback for c in self.channels if c.fallback is not None)

    def with_fallbacks(self, channels: Iterable[ChannelConfig]) -> list[ChannelConfig]:
        """``channels`` and, after them, the fallback of each that has one (a run opens both)."""
        chosen = list(channels)
        ids = {c.id for c in chosen}
        extra = [self.channel(c.fallback) for c in chosen if c.fallback is not None and c.fallback not in ids]
        return chosen + list({c.id: c for c in extra}.values())


class UnknownKeyError(ConfigError):
    """A ``[[channel]]`` key its kind does not take; ``known`` holds the kind's own keys (besides COMMON_KEYS)."""

    def __init__(self, key: str, *, kind: str, known: frozenset[str], where: str) -> None:
        self.known = known
        allowed = ", ".join(sorted(COMMON_KEYS | known))
        super().__init__(f"unknown key {key!r} for kind {kind!r} (known: {allowed})", where=where)


_PROBE_KEY: Final = "\x00probe"  # no kind takes a key with a NUL in it


def kind_keys(kind: KindParser) -> frozenset[str]:
    """The keys of its own ``kind`` takes in a ``[[channel]]`` table, besides COMMON_KEYS, as its KindTable declares.

    Every kind's ``parse_options`` builds its KindTable before reading a key, so a table holding one key no kind
    takes is refused there, naming the keys it knows.
    """
    try:
        kind.parse_options({_PROBE_KEY: True}, where="(probe)", base_dir=Path("."))
    except UnknownKeyError as exc:
        return exc.known
    raise TypeError(f"{kind!r} took a key no kind knows: it must read its table through KindTable")


class KindTable:
    """One ``[[channel]]`` table as a kind reads its own keys.

    Built with the kind's keys (``{key: required?}``), it refuses an unknown key
    (listing the known ones), a missing required key, and an ``*_env`` key whose
    value is not an UPPER_CASE variable NAME (without echoing the value, which may
    be a pasted secret). The readers then check one key each; every error names
    the file, the channel and the key.
    """

    def __init__(self, table: Mapping[str, Any], *, kind: str, where: str, keys: Mapping[str, bool]) -> None:
        self.table = table
        self.kind = kind
        self.where = where
        for key in table:
            if key not in COMMON_KEYS and key not in keys:
                raise UnknownKeyError(key, kind=kind, known=frozenset(keys), where=where)
        for key, required in keys.items():
            if required and key not in table:
                raise ConfigError(f"key {key!r} is required for kind {kind!r}", where=where)
            if key in table and key.endswith("_env") and not _is_env_name(table[key]):
                raise ConfigError(
                    f"key {key!r} must name an environment variable (UPPER_CASE), not hold a value", where=where
                )

    def has(self, key: str) -> bool:
        return key in self.table

    def env(self, key: str) -> str:
        """A required ``*_env`` key (already checked to be a variable name)."""
        value = self.table[key]
        assert isinstance(value, str)  # checked in __init__
        return value

    def text(self, key: str, what: str = "a non-empty string") -> str:
        value = self.table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"key {key!r}: must be {what}", where=self.where)
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self.table else None

    def choice(self, key: str, choices: type[ChoiceT], default: ChoiceT) -> ChoiceT:
        value = self.table.get(key, default.value)
        try:
            return choices(value)
        except ValueError:
            allowed = " or ".join(f'"{c.value}"' for c in choices)
            raise ConfigError(f"key {key!r}: must be {allowed}", where=self.where) from None

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"key {key!r}: must be true or false", where=self.where)
        return value

    def whole_number(self, key: str, low: int, high: int, default: int) -> int:
        value = self.table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(f"key {key!r}: must be a whole number from {low} to {high}", where=self.where)
        return value

    def http_url(self, key: str) -> str:
        value = self.table.get(key)
        if not is_http_url(value):
            raise ConfigError(f"key {key!r}: must be an http(s) URL", where=self.where)
        assert isinstance(value, str)
        return value

    def path(self, key: str, base_dir: Path) -> Path:
        """A file path, resolved against the folder of channels.toml."""
        return resolve_path(base_dir, self.text(key, "a path relative to channels.toml"), key, self.where)


def load_config(path: str | os.PathLike[str], kinds: Mapping[str, KindParser]) -> Config:
    """Parse and validate channels.toml; raise one ConfigError naming file, channel and key.

    ``kinds`` maps each ``kind`` a channel may name to the class that parses its
    options (``broadcaster.channels.registry.KINDS``).
    """
    source = Path(path)
    try:
        raw = tomllib.loads(read_text(source))
    except FileProblem as exc:
        raise ConfigError(str(exc), where=str(source)) from None
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
    for key in top:
        if key not in SETTINGS_KEYS:
            raise ConfigError(f"[broadcaster]: unknown key {key!r}", where=where)
    sender = _require_str(top, "sender", f"{where}: [broadcaster]")
    tz_name = _require_str(top, "timezone", f"{where}: [broadcaster]")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[broadcaster]: key 'timezone': unknown time zone {tz_name!r}", where=where) from None
    settings = f"{where}: [broadcaster]"
    database = str(top.get("database", "var/broadcaster.db"))
    if "://" not in database:
        database = str(resolve_path(base_dir, database, "database", settings))
    templates_dir = resolve_path(base_dir, str(top.get("templates", "templates")), "templates", settings)
    runbooks_dir = resolve_path(base_dir, str(top.get("runbooks", "runbooks")), "runbooks", settings)
    public_url = top.get("public_url")
    token_expiry_s = token_expiry(top.get("token_expiry", "90d"), settings)
    skew = top.get("max_clock_skew_s", DEFAULT_MAX_CLOCK_SKEW_S)
    if not isinstance(skew, int | float) or isinstance(skew, bool) or not 0 < skew <= 3600:
        raise ConfigError("[broadcaster]: key 'max_clock_skew_s': must be a number of seconds from 0 to 3600 "
                          "(how far this host's clock may differ from the database's)", where=where)
    authority = _bilingual(top.get("authority"), "authority", settings)
    contact = _bilingual(top.get("contact"), "contact", settings)
    signing = {key: resolve_path(base_dir, _require_str(top, key, settings), key, settings)
               for key in ("cap_signing_key", "cap_signing_cert") if key in top}
    if len(signing) == 1:
        raise ConfigError("[broadcaster]: keys 'cap_signing_key' and 'cap_signing_cert' go together: name both "
                          "files (the PEM private key and its certificate), or neither", where=where)

    tables = raw.get("channel", [])
    if not isinstance(tables, list) or not tables:
        raise ConfigError("no [[channel]] tables: declare at least one channel", where=where)
    channels: list[ChannelConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        channel = parse_channel(table, kinds, source=source, base_dir=base_dir, index=index)
        if channel.id in seen:
            raise ConfigError(f"channel {channel.id!r}: key 'id': duplicate channel id", where=where)
        seen.add(channel.id)
        if getattr(kinds[channel.kind], "needs_public_url", False) and not public_url:
            raise ConfigError(f"kind {channel.kind!r} needs [broadcaster] public_url, the address where "
                              "`broadcaster serve` publishes what the provider fetches (alert cards)",
                              where=channel.where)
        if getattr(kinds[channel.kind], "needs_cap_signing", False) and not signing:
            raise ConfigError(f"kind {channel.kind!r} sends signed CAP only: name the signing key and certificate "
                              "in [broadcaster] cap_signing_key and cap_signing_cert", where=channel.where)
        channels.append(channel)
    check_fallbacks(channels)

    return Config(
        path=source,
        sender=sender,
        timezone=timezone,
        database=database,
        templates_dir=templates_dir,
        runbooks_dir=runbooks_dir,
        public_url=str(public_url) if public_url else None,
        channels=tuple(channels),
        token_expiry_s=token_expiry_s,
        max_clock_skew_s=float(skew),
        authority=authority,
        contact=contact,
        cap_signing_key=signing.get("cap_signing_key"),
        cap_signing_cert=signing.get("cap_signing_cert"),
    )


def check_fallbacks(channels: Iterable[ChannelConfig]) -> None:
    """Each ``fallback`` names another channel of the same kind, of the same sort (drill or not), with the
    same languages, and without a fallback of its own (so never a cycle); errors name the channel and the key."""
    by_id = {c.id: c for c in channels}
    for channel in by_id.values():
        target_id = channel.fallback
        if target_id is None:
            continue
        target = by_id.get(target_id)
        problem = None
        if target_id == channel.id:
            problem = "a channel cannot be its own fallback"
        elif target is None:
            problem = f"no channel with id {target_id!r}"
        elif target.kind != channel.kind:
            problem = f"channel {target_id!r} is a {target.kind} channel; a fallback must be {channel.kind} too"
        elif target.fallback is not None:
            problem = (f"channel {target_id!r} has a fallback of its own ({target.fallback!r}); "
                       "a fallback channel cannot have one (no chains, no cycles)")
        elif target.exercise != channel.exercise:
            problem = (f"channel {target_id!r} has exercise = {str(target.exercise).lower()}, this one "
                       f"{str(channel.exercise).lower()}: a drill must never move to a live channel, nor a live "
                       "alert to a drill channel")
        elif target.languages != channel.languages:
            problem = f"channel {target_id!r} sends {list(target.languages)}, this one {list(channel.languages)}"
        if problem is not None:
            raise ConfigError(f"key 'fallback': {problem}", where=channel.where)


def token_expiry(value: Any, where: str) -> float:
    """``token_expiry``: how long a new or rotated API token lives (``90d``, ``12h``, ``P30D``)."""
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise ConfigError(f"key 'token_expiry': {exc}", where=where) from None
    if seconds < 60:
        raise ConfigError(f"key 'token_expiry': {value!r} is shorter than a minute; tokens must live at least 1m",
                          where=where)
    return seconds


def is_http_url(value: Any) -> bool:
    """An http(s) URL with a host: "https://" alone would only fail at send time."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return False
    try:
        return bool(urlsplit(value).hostname) and not any(c.isspace() for c in value)
    except ValueError:
        return False


def resolve_path(base_dir: Path, value: str, key: str, where: str) -> Path:
    """``value`` resolved against the folder of channels.toml; a path no file system can hold is refused."""
    try:
        return (base_dir / value).resolve()
    except (ValueError, OSError):  # e.g. an embedded NUL, which TOML allows as "\u0000"
        raise ConfigError(f"key {key!r}: {value!r} is not a usable path", where=where) from None


class Bounds(NamedTuple):
    """The inclusive range of a numeric key, and its unit as errors name it."""

    low: float
    high: float
    unit: str


# Below one message in 1,000 s an alert takes days (a dry-run steps through every slot); no provider takes 100,000
# a second. A timeout under 0.1 s fails every request; over 5 minutes an alert waits on one dead connection.
RATE_PER_SECOND: Final = Bounds(0.001, 100_000.0, "messages per second")
TIMEOUT_S: Final = Bounds(0.1, 300.0, "seconds")


def bounded_number(table: Mapping[str, Any], key: str, default: float, bounds: Bounds, where: str) -> float:
    """``table[key]`` (or ``default``): a finite number inside ``bounds``; a ConfigError naming the key otherwise.

    TOML reads ``nan`` and ``inf`` as floats, and neither is ever a usable rate or timeout.
    """
    value = table.get(key, default)
    if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
            or not bounds.low <= value <= bounds.high):
        shown = f", not {value!r}" if isinstance(value, int | float) and not isinstance(value, bool) else ""
        raise ConfigError(f"key {key!r}: must be a number from {bounds.low:g} to {bounds.high:g} ({bounds.unit})"
                          f"{shown}", where=where)
    return float(value)
def _bilingual(value: Any, key: str, where: str) -> dict[str, str] | None:
    """An optional ``{ ar = "...", en = "..." }`` value: both languages, each a non-empty string."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != set(LANGUAGES) or not all(
        isinstance(v, str) and v.strip() for v in value.values()
    ):
        raise ConfigError(f'key {key!r}: must be {{ ar = "...", en = "..." }}, both non-empty', where=where)
    return {lang: value[lang].strip() for lang in LANGUAGES}


def _is_env_name(value: Any) -> bool:
    return isinstance(value, str) and value.isidentifier() and value.isupper()


def _require_str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"key {key!r} must be a non-empty string", where=where)
    return value


def parse_channel(
    table: Any, kinds: Mapping[str, KindParser], *, source: Path, base_dir: Path, index: int = 1
) -> ChannelConfig:
    """One ``[[channel]]`` table (the ``index``-th in ``source``): common keys here, the rest by its kind."""
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
    if not isinstance(kind, str) or kind not in kinds:
        raise ConfigError(f"key 'kind': {kind!r} is not one of {', '.join(kinds)}", where=where)
    parser = kinds[kind]
    # The kind's keys first: an unknown (mistyped) key is the likeliest mistake and is named before the rest.
    options = parser.parse_options(table, where=where, base_dir=base_dir)

    languages = table.get("languages", LANGUAGES)
    if (
        not isinstance(languages, list | tuple) or not languages
        or any(lang not in LANGUAGES for lang in languages) or len(set(languages)) != len(languages)
    ):
        raise ConfigError(f"key 'languages': must be a list drawn from {list(LANGUAGES)}", where=where)
    # Arabic first, whatever order the file used.
    ordered = tuple(lang for lang in LANGUAGES if lang in languages)
    areas = table.get("areas", ["*"])
    if not isinstance(areas, list) or not areas or not all(isinstance(a, str) and a for a in areas):
        raise ConfigError("key 'areas': must be a non-empty list of area codes or \"*\"", where=where)
    exercise = table.get("exercise", False)
    if not isinstance(exercise, bool):
        raise ConfigError("key 'exercise': must be true or false", where=where)
    api_base = table.get("api_base")
    if api_base is not None and not is_http_url(api_base):
        raise ConfigError("key 'api_base': must be an http(s) URL", where=where)
    rate = bounded_number(table, "rate_per_second", parser.default_rate_per_second, RATE_PER_SECOND, where)
    timeout_s = bounded_number(table, "timeout_s", 10.0, TIMEOUT_S, where)

    return ChannelConfig(
        id=raw_id,
        kind=kind,
        languages=ordered,
        areas=tuple(areas),
        exercise=exercise,
        api_base=api_base.rstrip("/") if isinstance(api_base, str) else None,
        rate_per_second=rate,
        timeout_s=timeout_s,
        options=options,
        source=source,
        base_dir=base_dir,
    )

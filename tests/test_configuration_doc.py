"""docs/configuration.md against the loader and the source, so the reference cannot drift.

Each ``##`` section of the page lists one table's keys in the first column of its table; the keys the loader
takes come from :data:`broadcaster.config.SETTINGS_KEYS`, :data:`~broadcaster.config.COMMON_KEYS` and each kind's
KindTable (:func:`broadcaster.config.kind_keys`). The environment variables come from the source: every
``os.environ`` / ``getenv`` read of a constant name in ``broadcaster/`` (and, for the test-suite list, ``tests/``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from broadcaster.channels.registry import KINDS
from broadcaster.config import COMMON_KEYS, SETTINGS_KEYS, KindTable, kind_keys, load_config
from broadcaster.errors import ConfigError
from tests.support import write_config

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
_KEY_CELL = re.compile(r"^\|\s*(`[^|]*`)\s*\|")
_NAME = re.compile(r"`([^`]+)`")
# A read of os.environ (indexed or .get) or of getenv, by a quoted name or by an UPPER_CASE constant holding one.
# A lower-case argument (env_name, ...) is a name channels.toml gave: documented as the `*_env` keys.
_ENV_READ = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\s*\()\s*(?:"([A-Z][A-Z0-9_]*)"|([A-Z][A-Z0-9_]*)\b)""")


def sections(text: str) -> dict[str, str]:
    """The page's ``##`` and ``###`` sections by heading (without the hashes)."""
    parts = re.split(r"^(#{2,3} .+)$", text, flags=re.MULTILINE)
    return {heading.lstrip("#").strip(): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def listed(body: str) -> set[str]:
    """The names in the first column of a section's table(s); one cell may list several (`a`, `b`)."""
    names: set[str] = set()
    for line in body.splitlines():
        cell = _KEY_CELL.match(line)
        if cell:
            names.update(_NAME.findall(cell.group(1)))
    return names


def env_reads(folder: Path, package: str | None) -> set[str]:
    """Every environment variable read by a constant name in ``folder``'s Python files."""
    found: set[str] = set()
    for path in sorted(folder.rglob("*.py")):
        for literal, constant in _ENV_READ.findall(path.read_text(encoding="utf-8")):
            if literal:
                found.add(literal)
                continue
            assert package is not None, f"{path}: resolve {constant} by hand"
            module = ".".join((package, *path.relative_to(folder).with_suffix("").parts))
            value = getattr(importlib.import_module(module), constant)
            assert isinstance(value, str), f"{path}: {constant} is not a variable name"
            found.add(value)
    return found


@pytest.fixture(scope="module")
def doc() -> dict[str, str]:
    return sections(DOC.read_text(encoding="utf-8"))


def test_the_broadcaster_table_lists_exactly_the_keys_the_loader_takes(doc: Mapping[str, str]) -> None:
    assert listed(doc["`[broadcaster]`"]) == SETTINGS_KEYS


def test_the_common_channel_keys_are_exactly_the_loaders(doc: Mapping[str, str]) -> None:
    assert listed(doc["Every `[[channel]]`"]) == COMMON_KEYS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_lists_exactly_the_keys_its_kindtable_takes(doc: Mapping[str, str], kind: str) -> None:
    assert listed(doc[f'`kind = "{kind}"`']) == kind_keys(KINDS[kind])


def test_every_kind_has_a_section_and_every_kind_section_is_a_kind(doc: Mapping[str, str]) -> None:
    documented = {m.group(1) for h in doc if (m := re.fullmatch(r'`kind = "(\w+)"`', h))}
    assert documented == set(KINDS)
    assert all(f"`{kind}`" in doc["Every `[[channel]]`"] for kind in KINDS)  # the `kind` key names them all


def test_every_environment_variable_the_program_reads_is_documented_and_nothing_more(
    doc: Mapping[str, str],
) -> None:
    read = env_reads(ROOT / "broadcaster", "broadcaster")
    assert {"BROADCASTER_CONFIG", "BROADCASTER_DB", "BROADCASTER_TOKEN"} <= read  # the scan itself works
    assert listed(doc["Read by broadcaster"]) == read


def test_every_environment_variable_the_tests_read_is_documented(doc: Mapping[str, str]) -> None:
    read = env_reads(ROOT / "tests", None)
    assert {"CI", "BROADCASTER_SCREENSHOTS"} <= read
    assert listed(doc["Read by the test suite only"]) == read


def test_a_config_using_every_documented_key_of_every_table_loads(tmp_path: Path, doc: Mapping[str, str]) -> None:
    """The reverse direction through the real loader: every documented key is accepted where the page puts it."""
    (tmp_path / "r.csv").write_text("phone,language,area\n+971501234567,ar,*\n", encoding="utf-8")
    (tmp_path / "e.csv").write_text("email,language,area\nops@example.gov,ar,*\n", encoding="utf-8")
    path = write_config(tmp_path, [
        {"id": f"{kind}-all", "kind": kind, **every_key(kind), "name": "all keys", "exercise": kind == "whatsapp",
         **({} if kind == "email" else {"api_base": "https://edge.example"}),  # email: host and port instead
         "rate_per_second": 2, "timeout_s": 5, "languages": ["en", "ar"], "areas": ["*"]}
        for kind in sorted(KINDS)
    ] + [{"id": "sms-infobip", "kind": "sms", **INFOBIP_SMS, "languages": ["en", "ar"]}],
        public_url="https://alerts.example.gov", token_expiry="30d", max_clock_skew_s=30,
        authority={"ar": "الهيئة", "en": "The Authority"}, database="var/x.db", templates="templates",
        runbooks="runbooks", cap_signing_key="k.pem", cap_signing_cert="c.pem")
    config = load_config(path, KINDS)
    assert {c.kind for c in config.channels} == set(KINDS)
    assert config.max_clock_skew_s == 30.0


INFOBIP_SMS: Final = {"provider": "infobip", "base_url": "https://xxxx.api.infobip.com", "api_key_env": "IB",
                      "from": "CivilDefence", "recipients": "r.csv", "max_segments": 4}


def every_key(kind: str) -> dict[str, Any]:
    """A table for ``kind`` that sets every key its section documents (``from`` rather than a service SID)."""
    values: dict[str, Any] = {
        "x": {"api_key_env": "XK", "api_secret_env": "XS", "access_token_env": "XT", "access_secret_env": "XA",
              "card": True},
        "telegram": {"chat_id": "@c", "token_env": "TG", "layout": "separate", "on_unknown": "hold", "card": True},
        "sms": {"account_sid_env": "SID", "auth_token_env": "TOK", "from": "+15005550006", "recipients": "r.csv",
                "max_segments": 3, "provider": "twilio", "fallback": "sms-infobip",
                "circuit": {"failures": 3, "window_s": 10, "cooldown_s": 20}},
        "whatsapp": {"account_sid_env": "SID", "auth_token_env": "TOK", "from": "whatsapp:+15005550006",
                     "recipients": "r.csv",
                     "content_sid": {"road_closure": {"ar": "HX" + "a" * 32, "en": "HX" + "b" * 32}},
                     "exercise_content_sid": {"road_closure": {"ar": "HX" + "c" * 32, "en": "HX" + "d" * 32}}},
        "email": {"host": "smtp.example.gov", "port": 587, "security": "starttls", "username_env": "SU",
                  "password_env": "SP", "from": "Alerts <alerts@example.gov>", "reply_to": "ops@example.gov",
                  "recipients": "e.csv", "layout": "separate", "connections": 2, "on_unknown": "hold"},
        "webhook": {"url": "https://partner.example/alerts", "secret_env": "HOOK"},
        "facebook": {"page_id": "123", "token_env": "FB", "layout": "separate", "api_version": "v21.0",
                     "card": True},
        "instagram": {"ig_user_id": "456", "token_env": "IG", "api_version": "v21.0"},
        "cap_push": {"url": "https://cap.example/cap", "auth": "mtls", "client_cert": "c.pem", "client_key": "k.pem",
                     "ca_file": "ca.pem", "content_type": "text/xml", "status_field": "status", "ack": "accepted"},
        "cell_broadcast": {"cbe_name": "alerts.example.gov", "scopes": {"DXB": "plmn"}, "geo_scope": "cell_wide",
                           "category": "normal", "repetition_period": 60, "num_of_bcast": 10, "max_pages": 4,
                           "token_env": "CBC"},
    }
    table = values[kind]
    # One of each choice: SMS names a sender or a service; cap_push's credentials go with its auth; the other
    # provider's keys of an sms channel are set on its fallback (INFOBIP_SMS below).
    others = {"messaging_service_sid", "token_env", "username_env", "password_env"}
    assert set(table) | others | (set(INFOBIP_SMS) if kind == "sms" else set()) >= kind_keys(KINDS[kind])
    return table


def test_kind_keys_names_what_a_kind_declares_and_refuses_one_that_skips_kindtable() -> None:
    class Declared:
        default_rate_per_second = 1.0

        @classmethod
        def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> Any:
            KindTable(table, kind="declared", where=where, keys={"alpha": True, "beta_env": False})
            raise AssertionError("unreachable: the probe key is unknown")

    class Lenient:
        default_rate_per_second = 1.0

        @classmethod
        def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> Any:
            return object()

    assert kind_keys(Declared) == {"alpha", "beta_env"}
    with pytest.raises(TypeError, match="KindTable"):
        kind_keys(Lenient)


def test_an_unknown_key_still_names_the_channel_and_every_known_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"id": "hook", "kind": "webhook", "url": "https://p.example/a",
                                    "secret_env": "HOOK", "secert_env": "HOOK"}])
    with pytest.raises(ConfigError) as caught:
        load_config(path, KINDS)
    message = str(caught.value)
    assert "channel 'hook'" in message and "'secert_env'" in message
    assert all(key in message for key in COMMON_KEYS | {"url", "secret_env"})

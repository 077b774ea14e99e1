"""Small builders shared by tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broadcaster.channels.registry import KINDS
from broadcaster.config import ChannelConfig, Config, load_config


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_config(tmp_path: Path, channels: list[dict[str, Any]], **top: Any) -> Path:
    """Write a channels.toml into ``tmp_path`` and return its path."""
    settings = {"sender": "alerts.example.gov", "timezone": "Asia/Dubai", "database": "var/test.db"}
    settings.update(top)
    lines = ["[broadcaster]"] + [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    for table in channels:
        lines.append("\n[[channel]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path = tmp_path / "channels.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_config(tmp_path: Path, channels: list[dict[str, Any]], **top: Any) -> Config:
    return load_config(write_config(tmp_path, channels, **top), KINDS)


def channel_config(tmp_path: Path, **table: Any) -> ChannelConfig:
    """One checked ChannelConfig from keyword keys, e.g. ``channel_config(p, id="t", kind="telegram", ...)``."""
    return make_config(tmp_path, [table]).channels[0]

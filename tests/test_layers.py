"""Imports only point down, and the channel kinds load no provider SDK until a channel opens."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "broadcaster"
SDKS = ("telegram", "tweepy", "twilio", "httpx", "httpcore", "aiohttp", "oauthlib", "requests")


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(*parts: str) -> list[Path]:
    target = PACKAGE.joinpath(*parts)
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


@pytest.mark.parametrize(
    ("lower", "forbidden"),
    [
        (("config",), ("broadcaster.channels",)),
        (("templates",), ("broadcaster.channels", "broadcaster.config")),
        (("text",), ("broadcaster.channels", "broadcaster.templates", "broadcaster.config")),
        (("channels",), ("broadcaster.engine", "broadcaster.store", "broadcaster.cli", "broadcaster.service",
                         "broadcaster.runbooks", "broadcaster.app")),
    ],
    ids=["config", "templates", "text", "channels"],
)
def test_imports_only_point_down(lower: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    upward = [(path.relative_to(PACKAGE), name) for path in files(*lower) for name in imported(path)
              if name.startswith(forbidden)]
    assert upward == []


@pytest.mark.parametrize("module", ["broadcaster.channels.registry", "broadcaster.templates.check",
                                    "broadcaster.engine.outbox"])
def test_the_kinds_import_no_sdk_until_a_channel_opens(module: str) -> None:
    """``preview``, ``templates check`` and ``channels check`` render and parse without any SDK."""
    code = f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []

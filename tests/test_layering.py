"""The import graph of ``broadcaster/``: no cycles, and imports only point down.

Every ``import`` counts, at module level or inside a function (a lazy import is
still a dependency); only imports under ``if TYPE_CHECKING:`` are left out,
since they never run. The layers, from the bottom up:

0. the vocabulary: states, errors, secret, timefmt, clock, netguard, text
1. what is read from files: config, recipients, selection, templates; the alert cards drawn from them
2. channels (one module per kind)
3. store (the backends live only here)
4. engine, cap, audit, anchors
5. runbooks
6. app (the application layer every face uses)
7. the faces: cli and service, and ``__main__``
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "broadcaster"
LAYERS: dict[str, int] = {
    "states": 0, "errors": 0, "secret": 0, "timefmt": 0, "clock": 0, "netguard": 0, "text": 0,
    "config": 1, "recipients": 1, "selection": 1, "templates": 1, "cards": 1,
    "channels": 2,
    "store": 3,
    "engine": 4, "cap": 4, "cap_signing": 4, "audit": 4, "anchors": 4,
    "runbooks": 5,
    "app": 6,
    "cli": 7, "service": 7, "__main__": 7,
}
SDKS = ("telegram", "tweepy", "twilio", "httpx", "httpcore", "aiohttp", "oauthlib", "requests", "aiosmtplib",
        "email_validator", "dns")
BACKENDS = ("broadcaster.store.sqlite", "broadcaster.store.sqlite_db", "broadcaster.store.postgres",
            "broadcaster.store.postgres_db")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if _type_checking_only(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def imported_by(module: str) -> set[str]:
    """The broadcaster modules ``module`` imports (a ``from pkg import sub`` names the submodule)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("broadcaster")}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        if not base.startswith("broadcaster"):
            continue
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {module: imported_by(module) for module in MODULES}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return LAYERS.get(top, -1)


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if m != "broadcaster" and layer(m) < 0]
    assert not unplaced, f"add these to LAYERS in tests/test_layering.py: {unplaced}"


def test_imports_only_point_down() -> None:
    upward = [f"{m} (layer {layer(m)}) imports {dep} (layer {layer(dep)})"
              for m, deps in GRAPH.items() if m != "broadcaster" for dep in sorted(deps)
              if dep != "broadcaster" and layer(dep) > layer(m)]
    assert not upward, "\n".join(upward)


def test_nothing_below_the_cli_imports_the_cli() -> None:
    offenders = [f"{m} imports {dep}" for m, deps in GRAPH.items() for dep in deps
                 if dep.startswith("broadcaster.cli") and not m.startswith(("broadcaster.cli", "broadcaster.__main__"))]
    assert not offenders, offenders


def test_nothing_outside_the_store_imports_a_backend() -> None:
    offenders = [f"{m} imports {dep}" for m, deps in GRAPH.items() for dep in deps
                 if dep in BACKENDS and not m.startswith("broadcaster.store")]
    assert not offenders, offenders


def test_the_store_knows_nothing_above_it() -> None:
    offenders = [f"{m} imports {dep}" for m, deps in GRAPH.items() if m.startswith("broadcaster.store")
                 for dep in deps if layer(dep) > layer(m)]
    assert not offenders, offenders


@pytest.mark.parametrize(("lower", "higher"), [
    ("broadcaster.templates", "broadcaster.config"),  # a template is checked against injected targets
    ("broadcaster.text", "broadcaster.templates"),
])
def test_finer_rules_inside_a_layer(lower: str, higher: str) -> None:
    offenders = [f"{m} imports {dep}" for m, deps in GRAPH.items() if m.startswith(lower)
                 for dep in deps if dep.startswith(higher)]
    assert not offenders, offenders


@pytest.mark.parametrize("module", ["broadcaster.channels.registry", "broadcaster.templates.check",
                                    "broadcaster.engine.outbox", "broadcaster.cli"])
def test_rendering_and_the_cli_load_no_sdk_until_a_channel_opens(module: str) -> None:
    """``--help``, ``preview``, ``templates check`` and ``channels check`` render and parse without any SDK."""
    code = f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_there_is_no_import_cycle() -> None:
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        seen[module] = 1
        path.append(module)
        for dep in sorted(GRAPH[module]):
            if seen.get(dep) == 1:
                cycles.append([*path[path.index(dep):], dep])
            elif dep not in seen:
                visit(dep)
        path.pop()
        seen[module] = 2

    for module in sorted(GRAPH):
        if module not in seen:
            visit(module)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("source, expected", [
    ("import broadcaster.store", {"broadcaster.store"}),
    ("from broadcaster.store import records", {"broadcaster.store.records"}),
    ("from broadcaster.store import Store", {"broadcaster.store"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from broadcaster.cli import main", set()),
    ("def f():\n    from broadcaster.cli import main", {"broadcaster.cli"}),
])
def test_the_graph_reader_sees_what_it_should(tmp_path: Path, source: str, expected: set[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above are only as good as this reader: it must see lazy imports and skip TYPE_CHECKING."""
    probe = PACKAGE / "states.py"
    monkeypatch.setitem(MODULES, "broadcaster.probe", tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text(source, encoding="utf-8")
    assert probe.exists()
    assert imported_by("broadcaster.probe") == expected

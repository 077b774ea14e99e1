"""Paths and small helpers shared by the template tests."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from broadcaster.channels.registry import KINDS, default_config, kind_of, targets
from broadcaster.templates.approval import approve, read_for_review
from broadcaster.templates.catalogue import GAZETTEER_FILE
from broadcaster.templates.gazetteer import load_gazetteer
from broadcaster.templates.render import Forms, Rendered

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TEMPLATES = ROOT / "templates"
SHIPPED_CHANNELS = ROOT / "channels.toml"
DUBAI = ZoneInfo("Asia/Dubai")


def set_kinds(path: Path, kinds: str) -> None:
    """Replace the template's ``kinds = [...]`` line, whichever kinds it lists now."""
    text = path.read_text(encoding="utf-8")
    assert len(re.findall(r"(?m)^kinds = \[.*\]$", text)) == 1, path.name
    path.write_text(re.sub(r"(?m)^kinds = \[.*\]$", f"kinds = {kinds}", text), encoding="utf-8")


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must occur exactly once) in ``path``."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


DEFAULT_TARGETS = targets(None)
PUBLIC_URL = "https://alerts.example.gov"  # the sample config's: the verification line is measured under it
"""One target per channel kind, every optional key at its default (``templates check`` without channels)."""


def render_kind(kind: str, forms: Forms, languages: tuple[str, ...]) -> list[Rendered]:
    """The messages a channel of ``kind`` sends in ``languages``, every other key at its default."""
    config = default_config(kind, languages=languages)
    return kind_of(config).render(forms, config)


def approve_as_is(path: Path, by: str, when: datetime) -> str:
    """Approve what ``path`` holds now, as an approver who has just reviewed it (its sha256)."""
    gazetteer = load_gazetteer(path.parent / GAZETTEER_FILE)
    reviewed = read_for_review(path, KINDS, gazetteer).template.content_hash
    return approve(path, by, when, reviewed=reviewed, gazetteer=gazetteer)

"""Fixtures for template tests: the shipped catalogue, and a private copy to edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broadcaster.channels.registry import KINDS
from broadcaster.templates.catalogue import Catalogue
from tests.support import Loaded, loaded
from tests.templates.support import SHIPPED_CHANNELS, SHIPPED_TEMPLATES


@pytest.fixture
def shipped_app() -> Loaded:
    """The shipped channels.toml and catalogue (no database)."""
    return loaded(SHIPPED_CHANNELS)


@pytest.fixture
def shipped() -> Catalogue:
    return Catalogue(SHIPPED_TEMPLATES, KINDS)


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    """A private copy of the shipped catalogue that a test may edit."""
    folder = tmp_path / "templates"
    shutil.copytree(SHIPPED_TEMPLATES, folder)
    return Catalogue(folder, KINDS)

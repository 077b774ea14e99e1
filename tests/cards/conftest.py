"""The shipped channels.toml and catalogue, for cards drawn from the real templates."""

from __future__ import annotations

import pytest

from tests.support import Loaded, loaded
from tests.templates.support import SHIPPED_CHANNELS


@pytest.fixture
def shipped_app() -> Loaded:
    return loaded(SHIPPED_CHANNELS)

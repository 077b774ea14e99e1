"""What every operation needs: the checked config, the catalogue and the open store.

``async with open_app(config_path, database) as app`` loads ``channels.toml``
(``--config`` / ``BROADCASTER_CONFIG`` win over the default), opens the store
named by ``--db`` / ``BROADCASTER_DB`` / the file's ``database`` on the running
event loop, and closes it at the end. Every face (CLI, HTTP service, runbook
scheduler) holds exactly one of these per command or per process.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from broadcaster.audit import AuditLog
from broadcaster.channels.registry import KINDS
from broadcaster.config import Config, load_config
from broadcaster.selection import check_areas
from broadcaster.store import Store, open_store
from broadcaster.templates.catalogue import Catalogue

DEFAULT_CONFIG: Final = "channels.toml"
CALLBACK_PATH: Final = "/twilio/status"


@dataclass
class App:
    config: Config
    catalogue: Catalogue
    store: Store
    database: str

    async def audit(self, actor: str, action: str, detail: Mapping[str, Any], *, now: float | None = None) -> None:
        """Append one row to the hash-chained audit log."""
        await AuditLog(self.store.db).append(actor, action, detail, now=time.time() if now is None else now)

    @property
    def status_callback(self) -> str | None:
        """Where Twilio posts delivery receipts (the service's ``/twilio/status``), when there is a public URL."""
        return status_callback(self.config)


def status_callback(config: Config) -> str | None:
    return f"{config.public_url.rstrip('/')}{CALLBACK_PATH}" if config.public_url else None


def config_path(given: str | None) -> Path:
    return Path(given or os.environ.get("BROADCASTER_CONFIG") or DEFAULT_CONFIG)


def load(config: str | None = None, database: str | None = None) -> tuple[Config, Catalogue, str]:
    """Read and check ``channels.toml`` and the templates folder; which database to use (nothing opened)."""
    loaded = load_config(config_path(config), KINDS)
    db = database or os.environ.get("BROADCASTER_DB") or loaded.database
    catalogue = Catalogue(loaded.templates_dir, KINDS)
    check_areas(loaded, catalogue.gazetteer.area_codes(), gazetteer=str(catalogue.gazetteer.path))
    return loaded, catalogue, db


def database_of(config: str | None = None, database: str | None = None) -> str:
    """The database a command would use, without loading the templates (``db``, ``users``, ``audit``)."""
    return database or os.environ.get("BROADCASTER_DB") or load_config(config_path(config), KINDS).database


@asynccontextmanager
async def open_app(config: str | None = None, database: str | None = None, *,
                   name: str = "broadcaster") -> AsyncIterator[App]:
    """The checked config and catalogue, with the store open on this loop; closed when the block ends."""
    loaded, catalogue, db = load(config, database)
    store = await open_store(db, name=name)
    try:
        yield App(config=loaded, catalogue=catalogue, store=store, database=db)
    finally:
        await store.close()

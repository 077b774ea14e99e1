"""Small builders shared by tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from broadcaster.app.users import Users
from broadcaster.channels.registry import KINDS
from broadcaster.config import ChannelConfig, Config, load_config
from broadcaster.states import RunState
from broadcaster.store import Store, opened
from broadcaster.store.records import AlertRecord, AttemptRow, DeliveryRow, RunRecord, RunStepRow
from broadcaster.store.sql import Database
from broadcaster.templates.catalogue import Catalogue


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def write_config(tmp_path: Path, channels: list[dict[str, Any]], **top: Any) -> Path:
    """Write a channels.toml into ``tmp_path`` and return its path."""
    # public_url as in the sample config: the shipped templates' verification line needs it. None leaves it out.
    settings = {"sender": "alerts.example.gov", "timezone": "Asia/Dubai", "database": "var/test.db",
                "public_url": "https://alerts.example.gov"}
    settings.update(top)
    lines = ["[broadcaster]"] + [f"{k} = {toml_value(v)}" for k, v in settings.items() if v is not None]
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


T = TypeVar("T")
# The users tests act as: each named for its role ("officer2" is a second officer).
TEST_USERS = {"viewer": "viewer", "operator": "operator", "officer": "officer", "officer2": "officer",
              "approver": "approver"}


def add_user(database: str | Path, name: str, role: str | None = None, **options: Any) -> str:
    """Create user ``name`` (role: ``TEST_USERS[name]`` unless given) in ``database``; their token."""
    async def add(store: Store) -> str:
        return (await Users(store.db).add(name, role or TEST_USERS[name], **options)).reveal()

    return read(str(database), add)


def token_file(folder: Path, database: str | Path, name: str = "officer") -> Path:
    """A token file (mode 600) for ``--token-file``: user ``name`` of ``TEST_USERS``, created on first use."""
    path = folder / f"{name}.token"
    if not path.exists():
        token = add_user(database, name)
        path.touch(mode=0o600)
        path.write_text(token + "\n", encoding="utf-8")
    return path


async def reopen(db: Database, statement: str, params: Sequence[Any] = ()) -> None:
    """Run ``statement`` on deliveries already final, as a test pretending they are still queued must.

    A final state is append-only (migration 0006): the guard is dropped first, as
    someone with write access to the database would (``audit verify`` then tells).
    """
    on = " ON deliveries" if db.dialect == "postgresql" else ""
    await db.execute(f"DROP TRIGGER IF EXISTS deliveries_final{on}")
    await db.execute(statement, params)


def read(database: str, fn: Callable[[Store], Awaitable[T]]) -> T:
    """From a synchronous test: open the store, await ``fn(store)``, close it, return what it gave."""

    async def main() -> T:
        async with opened(database) as store:
            return await fn(store)

    return asyncio.run(main())


class Reader:
    """A synchronous view of a database, for tests that drive the CLI or another process.

    Each call opens the store on a loop of its own, reads, and closes it again.
    """

    def __init__(self, database: str | Path) -> None:
        self.database = str(database)

    def state_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        return read(self.database, lambda s: s.alerts.state_counts(alert_id))

    def deliveries(self, alert_id: str) -> list[DeliveryRow]:
        return read(self.database, lambda s: s.alerts.deliveries(alert_id))

    def attempts(self, alert_id: str) -> list[AttemptRow]:
        async def every(store: Store) -> list[AttemptRow]:
            return [a async for a in store.alerts.attempts(alert_id)]

        return read(self.database, every)

    def alert(self, alert_id: str) -> AlertRecord:
        return read(self.database, lambda s: s.alerts.get(alert_id))

    def alerts(self, limit: int = 50) -> list[AlertRecord]:
        return read(self.database, lambda s: s.alerts.recent(limit))

    def held(self, alert_id: str | None = None) -> list[DeliveryRow]:
        return read(self.database, lambda s: s.alerts.held(alert_id))

    def run(self, run_id: str) -> RunRecord:
        return read(self.database, lambda s: s.runs.get(run_id))

    def runs(self, states: tuple[RunState, ...] | None = None) -> list[RunRecord]:
        return read(self.database, lambda s: s.runs.recent(states))

    def run_steps(self, run_id: str) -> list[RunStepRow]:
        return read(self.database, lambda s: s.runs.steps(run_id))


@dataclass(frozen=True)
class Loaded:
    """A checked channels.toml and its catalogue, with no database opened."""

    config: Config
    catalogue: Catalogue


def loaded(config: str | Path) -> Loaded:
    checked = load_config(Path(config), KINDS)
    return Loaded(checked, Catalogue(checked.templates_dir, KINDS))

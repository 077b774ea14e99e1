"""``broadcaster db upgrade|status|backup|restore``: the database's schema, its backups, and putting one back."""

from __future__ import annotations

import argparse
from pathlib import Path

from broadcaster.cli.output import EXIT_OK, console


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="the database: schema, backup, restore")
    db_sub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply the schema migrations this version needs (both backends)")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    status = db_sub.add_parser("status", help="the schema version of the database and of this program")
    status.set_defaults(handler=cmd_db_status)
    backup = db_sub.add_parser(
        "backup", help="a consistent copy while serve and workers write (SQLite online backup; pg_dump on PostgreSQL)")
    backup.add_argument("path", metavar="PATH", help="the backup file to write")
    backup.add_argument("--yes", action="store_true", help="overwrite PATH if it exists")
    backup.set_defaults(handler=cmd_db_backup)
    restore = db_sub.add_parser(
        "restore", help="put a SQLite backup in place of the database (stopped first); then audit verify, resume")
    restore.add_argument("path", metavar="PATH", help="a file `broadcaster db backup` wrote")
    restore.add_argument("--yes", action="store_true", help="replace the database that is there")
    restore.set_defaults(handler=cmd_db_restore)


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from broadcaster.app.context import database_of
    from broadcaster.store import upgrade_database

    before, applied = await upgrade_database(database_of(args.config, args.db))
    out = console()
    for m in applied:
        out.print(f"applied {m.version:04d} {m.name}")
    after = applied[-1].version if applied else before
    out.print(f"schema at version {after} ({'up to date' if not applied else f'was {before}'})")
    return EXIT_OK


async def cmd_db_status(args: argparse.Namespace) -> int:
    from broadcaster.app.context import database_of
    from broadcaster.store import migrate, opened

    async with opened(database_of(args.config, args.db), require_schema=False) as store:
        have, want = await migrate.current(store.db), migrate.latest(store.db.dialect)
    state = "up to date" if have == want else ("run `broadcaster db upgrade`" if have < want else "newer than program")
    console().print(f"{store.db.dialect}: schema {have}, this broadcaster needs {want}: {state}")
    return EXIT_OK if have == want else 1


async def cmd_db_backup(args: argparse.Namespace) -> int:
    from broadcaster.app.backup import backup
    from broadcaster.app.context import database_of
    from broadcaster.store.urls import is_postgres_url, redact

    database = database_of(args.config, args.db)
    dest = Path(args.path)
    summary = await backup(database, dest, overwrite=args.yes)
    source = redact(database) if is_postgres_url(database) else database
    if summary is None:
        console().print(f"backed up {source} to {dest} with pg_dump (custom format; restore with pg_restore)")
    else:
        console().print(f"backed up {source} to {dest}: schema {summary.schema}, {summary.alerts} alert(s), "
                        f"{summary.deliveries} deliveries ({summary.open_deliveries} still open at the backup)")
    return EXIT_OK


async def cmd_db_restore(args: argparse.Namespace) -> int:
    from broadcaster.app.backup import NEXT_STEPS, restore
    from broadcaster.app.context import database_of
    from broadcaster.cli.prompts import actor

    database = database_of(args.config, args.db)
    restored = await restore(Path(args.path), database, overwrite=args.yes, actor=actor())
    s = restored.summary
    out = console()
    out.print(f"restored {args.path} to {database}: schema {s.schema}, {s.alerts} alert(s), {s.deliveries} deliveries")
    if restored.made_unknown:
        out.print(f"{restored.made_unknown} deliveries were open in the backup and may have gone out since: they are "
                  "now unknown, reconciled with the provider before any resend")
    out.print("next:")
    for step in NEXT_STEPS:
        out.print(f"  {step}", markup=False)
    return EXIT_OK

"""Database URLs: which backend, where it is, and how to name it without a password."""

from __future__ import annotations

from urllib.parse import urlsplit

from broadcaster.errors import ConfigError


def is_postgres_url(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without user info beyond the user name (safe for logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.password is not None:
        raise ConfigError("the PostgreSQL URL must not contain a password: set PGPASSWORD "
                          "(or use ~/.pgpass) in the node's environment", where=redact(url))
    if not parts.path.strip("/"):
        raise ConfigError("the PostgreSQL URL names no database (postgresql://user@host:port/DBNAME)",
                          where=redact(url))


def address(url: str) -> tuple[str, int]:
    """The host and port the pool connects to (a dry-run's network guard lets exactly this through)."""
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or 5432

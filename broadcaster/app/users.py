"""API users, their bearer tokens and what each role may do.

A token is ``bct_<id>_<secret>``. Only a salted scrypt hash of the secret is
stored, next to the public ``id`` that finds the row; the token itself is shown
once, by ``broadcaster users add`` or ``users rotate``, and is held in a
:class:`Secret` (masked repr) everywhere else. Every token expires
(``expires_at``; channels.toml's ``token_expiry``, 90 days unless set).

The HTTP service and the CLI verify a token the same way, with :meth:`Users.verify`.
A verified token is remembered in memory by its sha256 so that each request does
not pay for scrypt again; but a remembered token is only trusted for
:data:`RECHECK_S` by the injected clock: after that its row is read again by its
public id (one indexed read, no scrypt), so removing a user, changing their role
or rotating their token takes effect within a second on every running process.
Expiry is checked on every use.

Every change to a user (add, remove, role, rotate) is written in one transaction
with its audit row, when the caller names who made it (``actor``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from broadcaster.audit import AuditLog
from broadcaster.clock import Clock, in_thread
from broadcaster.config import DEFAULT_TOKEN_EXPIRY_S
from broadcaster.errors import Forbidden, InputError, IntegrityError, Refusal
from broadcaster.secret import Secret
from broadcaster.store.sql import Database
from broadcaster.templates.catalogue import Template
from broadcaster.timefmt import iso_seconds

ROLES: Final = ("viewer", "operator", "officer", "approver")
RANK: Final = {role: rank for rank, role in enumerate(ROLES)}
CONFIRMING_ROLES: Final = frozenset({"officer", "approver"})
RECHECK_S: Final = 1.0  # a remembered token is trusted this long before its row is read again
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_TOKEN: Final = re.compile(r"^bct_([0-9a-f]{16})_([0-9a-f]{64})$")
# scrypt at n=2**14, r=8 costs about 16 MiB and tens of milliseconds per check.
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_COLUMNS: Final = "name, role, created_at, expires_at"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True, slots=True)
class Account:
    """One user as ``broadcaster users list`` shows them: never their token."""

    name: str
    role: str
    created_at: float
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


async def _existing(db: Database, name: str) -> Account:
    row = (await db.execute(f"SELECT {_COLUMNS} FROM users WHERE name = ?", (name,))).one()
    if row is None:
        raise InputError(f"no user {name!r}; `broadcaster users list` shows who there is", where="NAME")
    return _account(row)


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


def _account(row: Any) -> Account:
    return Account(row["name"], row["role"], float(row["created_at"]), float(row["expires_at"]))


def expired_reason(name: str, expires_at: float) -> str:
    return (f"token expired at {iso_seconds(expires_at)}; `broadcaster users rotate {name}` issues a new one")


class Users:
    """The ``users`` table: create, change and remove users; check tokens.

    ``clock`` (the service's, in the service) times expiry and how long a
    verified token is remembered without reading its row again.
    """

    def __init__(self, db: Database, *, clock: Clock | None = None, recheck_s: float = RECHECK_S) -> None:
        self.db = db
        self.clock = clock or Clock()
        self.recheck_s = recheck_s
        self._verified: dict[bytes, _Known] = {}

    # --- administration ----------------------------------------------------------------

    async def add(self, name: str, role: str, *, expires_s: float = DEFAULT_TOKEN_EXPIRY_S,
                  now: float | None = None, actor: str | None = None) -> Secret:
        """Create a user and return their new token (shown once, never stored)."""
        if not _NAME.match(name):
            raise InputError(f"user name {name!r}: use letters, digits and . _ @ - (at most 64)")
        _check_role(role)
        now = time.time() if now is None else now
        token_id, secret, salt, digest = await _new_token()
        expires_at = now + _lifetime(expires_s)

        async def write(tx: Database) -> dict[str, Any]:
            await tx.execute(
                "INSERT INTO users (name, role, token_id, token_salt, token_hash, created_at, expires_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (name, role, token_id, salt, digest, now, expires_at),
            )
            return {"name": name, "role": role, "expires_at": iso_seconds(expires_at)}

        try:
            await self._change("user_add", write, actor, now)
        except IntegrityError:
            raise InputError(f"user {name!r} already exists") from None
        return Secret(f"bct_{token_id}_{secret}", "api token")

    async def remove(self, name: str, *, now: float | None = None, actor: str | None = None) -> Account:
        """Delete a user: their token stops working at once here, within a second on every running server."""
        removed: list[Account] = []

        async def write(tx: Database) -> dict[str, Any]:
            removed.append(await _existing(tx, name))
            await tx.execute("DELETE FROM users WHERE name = ?", (name,))
            return {"name": name, "role": removed[0].role}

        await self._change("user_remove", write, actor, now)
        return removed[0]

    async def set_role(self, name: str, role: str, *, now: float | None = None, actor: str | None = None) -> str:
        """Give ``name`` another role; returns the role they had."""
        _check_role(role)

        async def write(tx: Database) -> dict[str, Any]:
            previous = (await _existing(tx, name)).role
            await tx.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
            return {"name": name, "role": role, "previous": previous}

        return str((await self._change("user_role", write, actor, now))["previous"])

    async def rotate(self, name: str, *, expires_s: float = DEFAULT_TOKEN_EXPIRY_S, now: float | None = None,
                     actor: str | None = None) -> Secret:
        """A new token for ``name``; the old one is dead at once (here; within a second on a running server)."""
        now = time.time() if now is None else now
        expires_at = now + _lifetime(expires_s)
        await _existing(self.db, name)  # before paying for scrypt
        token_id, secret, salt, digest = await _new_token()

        async def write(tx: Database) -> dict[str, Any]:
            await _existing(tx, name)
            await tx.execute(
                "UPDATE users SET token_id = ?, token_salt = ?, token_hash = ?, expires_at = ? WHERE name = ?",
                (token_id, salt, digest, expires_at, name))
            return {"name": name, "expires_at": iso_seconds(expires_at)}

        await self._change("user_rotate", write, actor, now)
        return Secret(f"bct_{token_id}_{secret}", "api token")

    async def get(self, name: str) -> User | None:
        row = (await self.db.execute("SELECT name, role FROM users WHERE name = ?", (name,))).one()
        return User(row["name"], row["role"]) if row else None

    async def all(self) -> list[Account]:
        return [_account(r) for r in await self.db.execute(f"SELECT {_COLUMNS} FROM users ORDER BY name")]

    async def _change(self, action: str, write: Callable[[Database], Awaitable[dict[str, Any]]],
                      actor: str | None, now: float | None) -> dict[str, Any]:
        """``write`` (which returns what the audit row says), and (when ``actor`` is given) that audit row, in
        one transaction; this process forgets the user's remembered tokens at once."""
        async with self.db.transaction(serialized=True) as tx:
            detail = await write(tx)
            if actor is not None:
                await AuditLog(tx).append(actor, action, detail, now=time.time() if now is None else now)
        name = detail["name"]
        self._verified = {k: v for k, v in self._verified.items() if v.user.name != name}
        return detail

    # --- checking tokens ---------------------------------------------------------------

    async def verify(self, token: str) -> tuple[User | None, str]:
        """The user a bearer token belongs to, or ``(None, reason)``. Constant-time compare.

        scrypt runs on a worker thread, so bad tokens cannot stall an event loop.
        """
        fingerprint = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(fingerprint)
        if known is not None:
            return await self._recheck(fingerprint, known)
        match = _TOKEN.match(token)
        if match is None:
            return None, "malformed token"
        row = (await self.db.execute(
            "SELECT name, role, token_salt, token_hash, expires_at FROM users WHERE token_id = ?", (match.group(1),)
        )).one()
        if row is None:
            # Hash anyway: the same cost either way gives no timing hint that the id exists.
            await in_thread(_hash, match.group(2), b"\0" * 16)
            return None, "unknown token"
        # bytes() as some drivers hand BLOB/bytea columns back as memoryview.
        stored = bytes(row["token_hash"])
        digest = await in_thread(_hash, match.group(2), bytes(row["token_salt"]))
        if not hmac.compare_digest(digest, stored):
            return None, "wrong token secret"
        known = _Known(User(row["name"], row["role"]), match.group(1), stored, float(row["expires_at"]),
                       self.clock.monotonic())
        if self.clock.now() >= known.expires_at:
            return None, expired_reason(known.user.name, known.expires_at)
        self._verified[fingerprint] = known
        return known.user, ""

    async def _recheck(self, fingerprint: bytes, known: _Known) -> tuple[User | None, str]:
        """A remembered token: its row read again (by id, no scrypt) once it is older than ``recheck_s``."""
        checked = self.clock.monotonic()
        if checked - known.checked_at > self.recheck_s:
            row = (await self.db.execute(
                "SELECT name, role, token_hash, expires_at FROM users WHERE token_id = ?", (known.token_id,)
            )).one()
            if row is None or not hmac.compare_digest(bytes(row["token_hash"]), known.stored):
                self._verified.pop(fingerprint, None)
                return None, "token revoked (its user was removed, or the token was rotated)"
            known = _Known(User(row["name"], row["role"]), known.token_id, known.stored, float(row["expires_at"]),
                           checked)
            self._verified[fingerprint] = known
        if self.clock.now() >= known.expires_at:
            self._verified.pop(fingerprint, None)
            return None, expired_reason(known.user.name, known.expires_at)
        return known.user, ""


@dataclass(frozen=True, slots=True)
class _Known:
    """A verified token as remembered: whose, which row, and when that row was last read (monotonic)."""

    user: User
    token_id: str
    stored: bytes = field(repr=False)
    expires_at: float
    checked_at: float


async def _new_token() -> tuple[str, str, bytes, bytes]:
    token_id = secrets.token_hex(8)
    secret = secrets.token_hex(32)  # hex: no "_", so the token splits unambiguously
    salt = secrets.token_bytes(16)
    return token_id, secret, salt, await in_thread(_hash, secret, salt)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"role {role!r}: must be one of {', '.join(ROLES)}", where="--role")


def _lifetime(seconds: float) -> float:
    if not seconds > 0:
        raise InputError("a token must live a while: give a positive duration, e.g. 90d", where="--expires")
    return seconds


def token_id_of(token: str) -> str | None:
    """The public id part of a token, for the audit log (never the secret)."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


# --- what each role may do -------------------------------------------------------------


def require(user: User, role: str, action: str) -> None:
    if not user.at_least(role):
        raise Forbidden(f"{action} needs the {role} role or higher; {user.name} is {user.role}").because(
            Refusal.FORBIDDEN_ROLE, needs=role, role=str(user.role))


def check_fire(user: User, mode: str, template: Template) -> None:
    """viewer: nothing; operator: dry-run and exercise (live only where the template allows);
    officer and approver: every mode."""
    if mode == "live" and getattr(template, "operator_live", False) is True:
        require(user, "operator", f"a live {template.id}")
        return
    require(user, "officer" if mode == "live" else "operator", f"a {mode} fire")


def check_confirm(user: User) -> None:
    """Only an officer or approver confirms a two-person fire (and never their own: a 409, in the handler)."""
    if user.role not in CONFIRMING_ROLES:
        raise Forbidden(f"confirming a two-person fire needs the officer or approver role; {user.name} is "
                        f"{user.role}").because(Refusal.FORBIDDEN_ROLE, needs="officer", role=str(user.role))

"""API users, their bearer tokens and what each role may do.

A token is ``bct_<id>_<secret>``. Only a salted scrypt hash of the secret is
stored, next to the public ``id`` that finds the row; the token itself is shown
once, by ``broadcaster users add``, and is held in a :class:`Secret` (masked
repr) everywhere else. Verified tokens are remembered in memory by their sha256
so that each request does not pay for scrypt again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Final

from broadcaster.errors import Forbidden, InputError, IntegrityError
from broadcaster.secret import Secret
from broadcaster.store.sql import Database
from broadcaster.templates.catalogue import Template

ROLES: Final = ("viewer", "operator", "officer", "approver")
RANK: Final = {role: rank for rank, role in enumerate(ROLES)}
CONFIRMING_ROLES: Final = frozenset({"officer", "approver"})
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_TOKEN: Final = re.compile(r"^bct_([0-9a-f]{16})_([0-9a-f]{64})$")
# scrypt at n=2**14, r=8 costs about 16 MiB and tens of milliseconds per check.
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


class Users:
    """The ``users`` table: create users, check tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._verified: dict[bytes, User] = {}

    async def add(self, name: str, role: str, *, now: float | None = None) -> Secret:
        """Create a user and return their new token (shown once, never stored)."""
        if not _NAME.match(name):
            raise InputError(f"user name {name!r}: use letters, digits and . _ @ - (at most 64)")
        if role not in ROLES:
            raise InputError(f"--role {role!r}: must be one of {', '.join(ROLES)}")
        token_id = secrets.token_hex(8)
        secret = secrets.token_hex(32)  # hex: no "_", so the token splits unambiguously
        salt = secrets.token_bytes(16)
        digest = await asyncio.to_thread(_hash, secret, salt)
        try:
            await self.db.execute(
                "INSERT INTO users (name, role, token_id, token_salt, token_hash, created_at) VALUES (?,?,?,?,?,?)",
                (name, role, token_id, salt, digest, time.time() if now is None else now),
            )
        except IntegrityError:
            raise InputError(f"user {name!r} already exists") from None
        return Secret(f"bct_{token_id}_{secret}", "api token")

    async def get(self, name: str) -> User | None:
        row = (await self.db.execute("SELECT name, role FROM users WHERE name = ?", (name,))).one()
        return User(row["name"], row["role"]) if row else None

    async def all(self) -> list[User]:
        return [User(r["name"], r["role"]) for r in await self.db.execute("SELECT name, role FROM users ORDER BY name")]

    async def verify(self, token: str) -> tuple[User | None, str]:
        """The user a bearer token belongs to, or ``(None, reason)``. Constant-time compare.

        scrypt runs on a worker thread, so bad tokens cannot stall an event loop.
        """
        step = await self._candidate(token)
        if not isinstance(step, _Candidate):
            return step
        return self._conclude(step, await asyncio.to_thread(_hash, step.secret, step.salt))

    async def _candidate(self, token: str) -> tuple[User | None, str] | _Candidate:
        fingerprint = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(fingerprint)
        if known is not None:
            return known, ""
        match = _TOKEN.match(token)
        if match is None:
            return None, "malformed token"
        row = (await self.db.execute(
            "SELECT name, role, token_salt, token_hash FROM users WHERE token_id = ?", (match.group(1),)
        )).one()
        if row is None:
            # Hash anyway: the same cost either way gives no timing hint that the id exists.
            return _Candidate(fingerprint, match.group(2), b"\0" * 16, None, None)
        # bytes() as some drivers hand BLOB/bytea columns back as memoryview.
        return _Candidate(fingerprint, match.group(2), bytes(row["token_salt"]), bytes(row["token_hash"]),
                          User(row["name"], row["role"]))

    def _conclude(self, candidate: _Candidate, digest: bytes) -> tuple[User | None, str]:
        if candidate.user is None or candidate.stored is None:
            return None, "unknown token"
        if not hmac.compare_digest(digest, candidate.stored):
            return None, "wrong token secret"
        self._verified[candidate.fingerprint] = candidate.user
        return candidate.user, ""


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A well-formed token and the row it names, waiting for its scrypt check."""

    fingerprint: bytes
    secret: str = field(repr=False)
    salt: bytes
    stored: bytes | None
    user: User | None


def token_id_of(token: str) -> str | None:
    """The public id part of a token, for the audit log (never the secret)."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


# --- what each role may do -------------------------------------------------------------


def require(user: User, role: str, action: str) -> None:
    if not user.at_least(role):
        raise Forbidden(f"{action} needs the {role} role or higher; {user.name} is {user.role}")


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
                        f"{user.role}")


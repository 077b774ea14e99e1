"""A throwaway PostgreSQL server for the test suite.

``PgServer().start()`` runs ``initdb`` into a fresh temporary directory and starts
``postgres`` on it, listening only on 127.0.0.1 (a free port) and on a unix socket
inside that directory, with durability switched off for speed. ``stop()`` shuts it
down immediately and deletes the directory; an ``atexit`` hook does the same if a
fixture teardown never runs.

``initdb`` and ``postgres`` refuse to run as root, so under root both run as the
``postgres`` system user that Debian's package creates (and the directory is
chowned to it). The superuser is ``broadcaster`` with trust authentication.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

SUPERUSER = "broadcaster"
SERVICE_USER = "postgres"  # unprivileged account the server runs as when we are root
REQUIRED = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT = 30.0
SHM_MIN_FREE = 1 << 30  # Docker's default 64 MB /dev/shm is too small; use the temp dir there

_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_ENV = re.compile(r"^PG[A-Z]+$")


class PgServerError(RuntimeError):
    """The throwaway server could not be set up, started or used."""


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in REQUIRED)


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin; "9.6" and "15" both sort numerically.
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Tried in order: ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin`` (newest
    version first), then the directory of ``initdb`` on PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    return next((c for c in candidates if _has_server(c)), None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _utf8_locale() -> str | None:
    """``C.UTF-8`` if the system has it (Unicode-aware upper/lower), else None."""
    try:
        names = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return "C.UTF-8" if any(n.lower() in ("c.utf8", "c.utf-8") for n in names) else None


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _run_coroutine(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on a private event loop in a worker thread.

    Fixtures call this while pytest-asyncio may own the thread's event loop; a
    separate thread keeps the two from ever touching each other.
    """
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    worker = threading.Thread(target=target, name="pgserver")
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]


def _quote_ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return f'"{name}"'


class PgServer:
    """One PostgreSQL cluster in a temporary directory, for one test session."""

    # Tuned for tests: nothing here needs to survive a crash.
    settings: ClassVar[dict[str, str]] = {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "shared_buffers": "64MB",
        "max_wal_size": "1GB",  # no checkpoints forced by WAL volume mid-run
    }

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_pg_bin()
        if found is None:
            raise PgServerError("no PostgreSQL server binaries found (initdb, pg_ctl, postgres)")
        self.bindir = found
        self._port: int | None = None
        self._root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._account: pwd.struct_passwd | None = None

    # -- properties --------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise PgServerError("server is not started")
        return self._port

    @property
    def admin_dsn(self) -> str:
        return self.dsn("postgres")

    def dsn(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def datadir(self) -> Path:
        if self._root is None:
            raise PgServerError("server is not started")
        return self._root / "data"

    @property
    def log_path(self) -> Path:
        if self._root is None:
            raise PgServerError("server is not started")
        return self._root / "postgres.log"

    @property
    def major_version(self) -> int:
        """The cluster's major version, from its PG_VERSION file (e.g. 15)."""
        return int((self.datadir / "PG_VERSION").read_text().split(".")[0])

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> PgServer:
        if self._proc is not None:
            raise PgServerError("server already started")
        self._account = self._service_account()
        self._root = self._make_root()
        atexit.register(self.stop)
        try:
            self._initdb()
            last = ""
            for _ in range(3):  # the free port can be taken between probe and bind
                self._port = _free_port()
                last = self._launch()
                if not last:
                    return self
                if "could not bind" not in last and "already in use" not in last:
                    break
            raise PgServerError(f"postgres did not start (bin {self.bindir}):\n{last}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Immediate shutdown, then delete the directory. Safe to call twice."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            self._terminate(proc)
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name unless given) and return its DSN."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        # FILE_COPY (the pre-15 behaviour) copies template0's files at once: about half
        # the time of 15's default WAL_LOG for a database this small.
        strategy = " STRATEGY FILE_COPY" if self.major_version >= 15 else ""
        self.execute(f"CREATE DATABASE {_quote_ident(name)} TEMPLATE template0{strategy}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any sessions still connected to it."""
        force = " WITH (FORCE)" if self.major_version >= 13 else ""
        self.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}{force}")

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement as the superuser (outside any transaction)."""
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.dsn(dbname), timeout=10)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        _run_coroutine(run())

    # -- internals ---------------------------------------------------------

    def _service_account(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            account = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise PgServerError(
                f"running as root, and PostgreSQL refuses to: no unprivileged {SERVICE_USER!r} user to "
                "run it as (Debian's postgresql package creates one; or run the tests as a normal user)"
            ) from None
        if account.pw_uid == 0:
            raise PgServerError(f"the {SERVICE_USER!r} user is root; PostgreSQL needs an unprivileged one")
        return account

    def _make_root(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="broadcaster-pg-", dir=self._scratch_base()))
        if self._account is not None:
            os.chown(root, self._account.pw_uid, self._account.pw_gid)
        return root

    def _scratch_base(self) -> Path:
        """Where the cluster lives: /dev/shm when it has room, else the temp dir.

        Even with fsync off, a disk-backed cluster made CREATE DATABASE take ~250 ms
        on a CI VM against ~10 ms on tmpfs. The socket path (<root>/.s.PGSQL.<port>)
        must fit in sun_path, and a server running as another user must reach it.
        """

        def usable(base: Path) -> bool:
            try:
                return (
                    len(str(base)) <= 60
                    and os.access(base, os.W_OK | os.X_OK)
                    and (self._account is None or _traversable_by_others(base))
                )
            except OSError:
                return False

        shm = Path("/dev/shm")
        with contextlib.suppress(OSError):
            if usable(shm) and shutil.disk_usage(shm).free >= SHM_MIN_FREE:
                return shm
        base = Path(tempfile.gettempdir())
        return base if usable(base) else Path("/tmp")

    def _popen_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not _PG_ENV.match(k)}
        kwargs: dict[str, Any] = {"cwd": self._root, "env": env, "stdin": subprocess.DEVNULL}
        if self._account is not None:
            env.update(HOME=self._account.pw_dir, USER=self._account.pw_name, LOGNAME=self._account.pw_name)
            kwargs.update(user=self._account.pw_uid, group=self._account.pw_gid, extra_groups=[])
        return kwargs

    def _initdb(self) -> None:
        locale = _utf8_locale()
        args = [
            str(self.bindir / "initdb"),
            "-D", str(self.datadir),
            "-A", "trust",
            "-U", SUPERUSER,
            "--encoding=UTF8",
            *([f"--locale={locale}"] if locale else ["--no-locale"]),
            "--no-sync",
            "--no-instructions",
        ]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, **self._popen_kwargs())
        if done.returncode != 0:
            raise PgServerError(
                f"initdb failed (exit {done.returncode}, bin {self.bindir}):\n{done.stdout}\n{done.stderr}"
            )

    def _launch(self) -> str:
        """Start postgres on ``self._port``; return "" once ready, else the log tail."""
        assert self._root is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._root),
            **self.settings,
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            # Own session: a Ctrl-C at the terminal reaches pytest, which stops us in order.
            self._proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._popen_kwargs()
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return _tail(self.log_path)
            if self._ready():
                return ""
            time.sleep(0.02)
        proc, self._proc = self._proc, None
        self._terminate(proc)
        return f"not ready after {START_TIMEOUT:.0f}s:\n{_tail(self.log_path)}"

    def _ready(self) -> bool:
        # Like `pg_ctl -w`: postmaster.pid line 8 says "ready" once connections are accepted.
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)  # immediate shutdown: the data is thrown away
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

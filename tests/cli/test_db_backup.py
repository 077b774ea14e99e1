"""``broadcaster db backup|restore`` on SQLite: a checked, consistent copy; a restore that reconciles before resending.

(The backup taken during a live 10,000-SMS fan-out: tests/cli/test_db_backup_under_load.py.)
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from broadcaster.cli import main
from broadcaster.cli.output import EXIT_INVALID, EXIT_OK
from broadcaster.store.backup import RESTORED_DETAIL
from tests.engine.providers import Providers
from tests.support import Reader


@pytest.fixture
def twenty(tmp_path: Path) -> Providers:
    return Providers(tmp_path, recipients=20)


def queue_a_live_sms(p: Providers) -> str:
    """A live alert to the SMS list, committed and left to the workers (none runs): every delivery pending."""
    assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--queue",
                      "--channels", "sms-residents", as_user="officer")) == EXIT_OK
    (alert,) = Reader(p.db).alerts()
    assert Reader(p.db).state_counts(alert.id) == {"sms-residents": {"pending": 20}}
    return alert.id


def test_a_restored_backup_asks_twilio_before_sending_what_went_out_after_it(
    twenty: Providers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The backup holds 20 pending SMS; all 20 went out after it. Restored and resumed, each is found at Twilio
    (reconciled) and none is sent twice. Before, there was no backup command, and a restored copy would resend."""
    with twenty as p:
        alert_id = queue_a_live_sms(p)
        backup = tmp_path / "backup.db"
        assert main(p.cli("db", "backup", str(backup))) == EXIT_OK
        assert "20 deliveries (20 still open at the backup)" in capsys.readouterr().out
        assert main(p.cli("resume")) == EXIT_OK  # the original database sends all 20 ...
        assert len(p.twilio.messages) == 20
        restored = tmp_path / "restored.db"  # ... and is then lost: the backup is put back elsewhere
        assert main(["--config", str(p.config), "--db", str(restored), "db", "restore", str(backup)]) == EXIT_OK
        out = capsys.readouterr().out
        assert "20 deliveries were open in the backup" in out
        assert "broadcaster audit verify" in out and "broadcaster resume" in out
        again = ["--config", str(p.config), "--db", str(restored)]
        assert main([*again, "resume"]) == EXIT_OK
        assert main([*again, "audit", "verify"]) == EXIT_OK
    assert len(p.twilio.messages) == 20, "a phone got a second SMS"
    assert Reader(restored).state_counts(alert_id) == {"sms-residents": {"sent": 20}}
    outcomes = [a.outcome for a in Reader(restored).attempts(alert_id)]
    assert sorted(set(outcomes)) == ["reconciled"]
    with sqlite3.connect(restored) as conn:  # the restore itself is in the audit log
        (detail,) = conn.execute("SELECT detail FROM audit WHERE action = 'database_restore'").fetchone()
    assert json.loads(detail) == {"backup": "backup.db", "alerts": 1, "deliveries": 20, "made_unknown": 20}


def test_a_restore_marks_an_attempt_in_flight_at_the_backup_unknown(twenty: Providers, tmp_path: Path) -> None:
    with twenty as p:
        alert_id = queue_a_live_sms(p)
        with sqlite3.connect(p.db) as conn:  # one delivery was mid-attempt when the backup was taken
            (delivery_id,) = conn.execute("SELECT MIN(id) FROM deliveries").fetchone()
            conn.execute("UPDATE deliveries SET state = 'sending', lease_owner = 'elsewhere:1:x', lease_until = 1e12,"
                         " attempts = 1 WHERE id = ?", (delivery_id,))
            conn.execute("INSERT INTO attempts (delivery_id, attempt, started_at) VALUES (?, 1, 1.0)", (delivery_id,))
        backup = tmp_path / "backup.db"
        assert main(p.cli("db", "backup", str(backup))) == EXIT_OK
        restored = tmp_path / "restored.db"
        assert main(["--config", str(p.config), "--db", str(restored), "db", "restore", str(backup)]) == EXIT_OK
    rows = Reader(restored).deliveries(alert_id)
    assert {d.state for d in rows} == {"unknown"}
    (attempt,) = Reader(restored).attempts(alert_id)
    assert attempt.outcome == "unknown" and attempt.detail == RESTORED_DETAIL


def test_restore_refuses_to_replace_a_database_without_yes_and_while_it_is_in_use(
    twenty: Providers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with twenty as p:
        queue_a_live_sms(p)
        backup = tmp_path / "backup.db"
        assert main(p.cli("db", "backup", str(backup))) == EXIT_OK
        capsys.readouterr()
        assert main(p.cli("db", "restore", str(backup))) == EXIT_INVALID
        assert "pass --yes to replace it" in capsys.readouterr().err
        with sqlite3.connect(p.db) as conn:  # a worker on another host, beating now
            conn.execute("INSERT INTO nodes (id, host, pid, role, started_at, heartbeat_at) VALUES "
                         "('otherhost:42:ab', 'otherhost', 42, 'worker', 0, (julianday('now') - 2440587.5) * 86400.0)")
        assert main(p.cli("db", "restore", str(backup), "--yes")) == EXIT_INVALID
        err = capsys.readouterr().err
        assert "in use by otherhost:42:ab" in err and "stop serve, worker and fire first" in err
        with sqlite3.connect(p.db) as conn:
            conn.execute("UPDATE nodes SET stopped_at = heartbeat_at WHERE id = 'otherhost:42:ab'")
        assert main(p.cli("db", "restore", str(backup), "--yes")) == EXIT_OK


def test_restore_checks_the_backup_is_a_broadcaster_database_of_this_version(
    twenty: Providers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with twenty as p:
        queue_a_live_sms(p)
        target = ["--config", str(p.config), "--db", str(tmp_path / "restored.db"), "db", "restore"]
        text = tmp_path / "notes.txt"
        text.write_text("not a database\n" * 100, encoding="utf-8")
        assert main([*target, str(text)]) == EXIT_INVALID
        assert "not a SQLite database" in capsys.readouterr().err
        other = tmp_path / "other.db"
        sqlite3.connect(other).execute("CREATE TABLE t (x INTEGER)").connection.close()
        assert main([*target, str(other)]) == EXIT_INVALID
        assert "not a broadcaster database: no schema_migrations" in capsys.readouterr().err
        old = tmp_path / "old.db"
        assert main(p.cli("db", "backup", str(old))) == EXIT_OK
        with sqlite3.connect(old) as conn:
            conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)")
        capsys.readouterr()
        assert main([*target, str(old)]) == EXIT_INVALID
        assert "this broadcaster needs" in capsys.readouterr().err
        assert main([*target, str(tmp_path / "missing.db")]) == EXIT_INVALID
        assert "no backup file here" in capsys.readouterr().err
    assert not (tmp_path / "restored.db").exists()


def test_backup_refuses_to_overwrite_without_yes_and_writes_one_self_contained_file(
    twenty: Providers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with twenty as p:
        queue_a_live_sms(p)
        (tmp_path / "nightly?#1").mkdir()
        backup = tmp_path / "nightly?#1" / "backup.db"  # a folder name that is not a URI
        backup.write_bytes(b"an earlier backup")
        assert main(p.cli("db", "backup", str(backup))) == EXIT_INVALID
        assert "exists already" in capsys.readouterr().err
        assert backup.read_bytes() == b"an earlier backup"
        assert main(p.cli("db", "backup", str(backup), "--yes")) == EXIT_OK
        restored = str(tmp_path / "nightly?#1" / "restored.db")
        assert main(["--config", str(p.config), "--db", restored, "db", "restore", str(backup)]) == EXIT_OK
    assert not Path(f"{backup}-wal").exists()
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 20


def test_on_postgresql_db_backup_runs_pg_dump_and_never_prints_a_password(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The password reaches pg_dump through PGPASSWORD, never the URL or the output."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("the PostgreSQL client tools (pg_dump, pg_restore) are not installed")
    monkeypatch.setenv("PGPASSWORD", "pg-SECRET-0000")
    assert main(["--db", pg_url, "db", "upgrade"]) == EXIT_OK
    dump = tmp_path / "broadcaster.dump"
    assert main(["--db", pg_url, "db", "backup", str(dump)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "with pg_dump" in out and "pg-SECRET-0000" not in out + err
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True).stdout
    assert "TABLE public deliveries" in listing and "TABLE public schema_migrations" in listing
    assert main(["--db", pg_url, "db", "restore", str(dump), "--yes"]) == EXIT_INVALID
    assert "restored with pg_restore" in " ".join(capsys.readouterr().err.split())


def test_on_postgresql_without_pg_dump_on_path_db_backup_says_what_to_do(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["--db", pg_url, "db", "backup", str(tmp_path / "broadcaster.dump")]) == EXIT_INVALID
    err = " ".join(capsys.readouterr().err.split())
    assert "pg_dump is not on PATH" in err and "postgresql-client" in err
    assert not (tmp_path / "broadcaster.dump").exists()

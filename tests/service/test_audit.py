"""The audit log is append-only and hash-chained; ``audit verify`` names the first tampered row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from broadcaster.audit import GENESIS, AuditLog, Verdict, row_hash
from broadcaster.cli import main
from broadcaster.errors import IntegrityError
from broadcaster.store import Store
from tests.service.support import Api
from tests.support import read, write_config


async def test_every_firing_action_and_failure_is_recorded(api: Api) -> None:
    await api.get("/api/me", None)  # a login failure
    _status, fired = await api.fire("officer", mode="live")
    await api.settle()
    await api.post(f"/api/alerts/{fired['alert_id']}/update", {"variables": {"reason": "event"}, "mode": "dry-run"})
    await api.post(f"/api/alerts/{fired['alert_id']}/cancel", {"mode": "live", "confirm": "cancel"})
    await api.fire("viewer", mode="dry-run")  # forbidden
    await api.settle()
    await api.service.failed_logins.flush(everything=True)  # failed logins are counted, and written per minute
    rows = [row async for row in api.service.audit.rows()]
    assert [r.action for r in rows] == ["config_load", "fire", "update", "cancel", "forbidden", "login_failure"]
    assert [r.actor for r in rows] == ["service", "officer", "officer", "officer", "viewer", "anonymous"]
    loaded = orjson.loads(rows[0].detail)
    assert loaded["path"].endswith("channels.toml") and len(loaded["sha256"]) == 64
    fire = orjson.loads(rows[1].detail)
    assert fire["alert_id"] == fired["alert_id"] and fire["mode"] == "live" and fire["template"] == "road_closure"
    assert (await api.service.audit.verify()).ok


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """A database with six audit rows; the store refuses UPDATE and DELETE on them."""
    path = tmp_path / "audit.db"

    async def six_rows(store: Store) -> None:
        log = AuditLog(store.db)
        for n in range(1, 7):
            await log.append(f"user{n}", "fire", {"alert_id": f"a{n}", "mode": "live"}, now=1_700_000_000.0 + n)
        with pytest.raises(IntegrityError, match="append-only"):
            await store.db.execute("UPDATE audit SET actor = 'x' WHERE seq = 2")
        with pytest.raises(IntegrityError, match="append-only"):
            await store.db.execute("DELETE FROM audit WHERE seq = 2")

    read(str(path), six_rows)
    return path


def verdict_of(path: Path) -> Verdict:
    return read(str(path), lambda store: AuditLog(store.db).verify())


def verify_cli(path: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[int, str]:
    config = tmp_path / "channels.toml"
    if not config.exists():
        write_config(tmp_path, [{"id": "hook", "kind": "webhook", "url": "https://partner.example/a",
                                 "secret_env": "PARTNER_HOOK_SECRET"}])
    capsys.readouterr()
    code = main(["--config", str(config), "--db", str(path), "audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def tamper(path: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    """Edit the file as someone with write access would: drop the append-only guards first."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER IF EXISTS audit_no_update")
    db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for sql in statements:
        db.execute(sql, params if "?" in sql else ())
    db.close()


def test_an_intact_chain_verifies(chain: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = verify_cli(chain, capsys, tmp_path)
    assert code == 0 and "audit log OK: 6 row(s); head row 6" in out


def test_an_edited_row_is_named(chain: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tamper(chain, "UPDATE audit SET detail = '{\"alert_id\":\"a3\",\"mode\":\"dry-run\"}' WHERE seq = 3")
    code, out = verify_cli(chain, capsys, tmp_path)
    assert code == 1 and "TAMPERED at row 3" in out and "edited" in out


def test_an_edited_actor_or_time_is_named(chain: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tamper(chain, "UPDATE audit SET actor = 'someone-else' WHERE seq = 5")
    assert "TAMPERED at row 5" in verify_cli(chain, capsys, tmp_path)[1]
    tamper(chain, "UPDATE audit SET actor = 'user5' WHERE seq = 5", "UPDATE audit SET at = '2020-01-01' WHERE seq = 2")
    assert "TAMPERED at row 2" in verify_cli(chain, capsys, tmp_path)[1]


def test_a_deleted_row_is_named(chain: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tamper(chain, "DELETE FROM audit WHERE seq = 3")
    code, out = verify_cli(chain, capsys, tmp_path)
    assert code == 1 and "TAMPERED at row 4" in out and "row 3 missing" in out and "deleted" in out


def test_a_deleted_first_row_is_named(chain: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tamper(chain, "DELETE FROM audit WHERE seq = 1")
    code, out = verify_cli(chain, capsys, tmp_path)
    assert code == 1 and "TAMPERED at row 2" in out and "row 1 missing" in out


def test_deleting_and_renumbering_is_named(chain: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Close the gap, so seq runs 1..5 again: the rows after it no longer match their hashes or links.
    tamper(chain, "DELETE FROM audit WHERE seq = 3", "UPDATE audit SET seq = -(seq - 1) WHERE seq > 3",
           "UPDATE audit SET seq = -seq WHERE seq < 0")
    code, out = verify_cli(chain, capsys, tmp_path)
    assert code == 1 and "TAMPERED at row 3" in out


def test_an_inserted_row_at_the_end_is_named(chain: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = sqlite3.connect(chain)
    head = db.execute("SELECT hash FROM audit WHERE seq = 6").fetchone()[0]
    db.close()
    tamper(chain, "INSERT INTO audit VALUES (7, '2026-01-01T00:00:00+00:00', 'mallory', 'approval', '{}', ?, ?)",
           params=(head, "f" * 64))
    code, out = verify_cli(chain, capsys, tmp_path)
    assert code == 1 and "TAMPERED at row 7" in out


def test_an_inserted_row_in_the_middle_is_named(chain: Path, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    # Make room at seq 3 and slip a row in with a made-up hash.
    tamper(chain, "UPDATE audit SET seq = -(seq + 1) WHERE seq >= 3", "UPDATE audit SET seq = -seq WHERE seq < 0")
    db = sqlite3.connect(chain)
    prev = db.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0]
    db.close()
    tamper(chain, "INSERT INTO audit VALUES (3, '2026-01-01T00:00:00+00:00', 'mallory', 'approval', '{}', ?, ?)",
           params=(prev, "0" * 64))
    code, out = verify_cli(chain, capsys, tmp_path)
    assert code == 1 and "TAMPERED at row 3" in out and "inserted" in out


def test_a_well_forged_insert_breaks_the_link_right_after_it(chain: Path) -> None:
    # A forger who computes a correct hash for the new row still cannot make the next row link to it.
    tamper(chain, "UPDATE audit SET seq = -(seq + 1) WHERE seq >= 3", "UPDATE audit SET seq = -seq WHERE seq < 0")
    db = sqlite3.connect(chain, isolation_level=None)
    prev = db.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0]
    at, detail = "2026-01-01T00:00:00+00:00", "{}"
    good = row_hash(prev, 3, at, "mallory", "approval", detail)
    db.execute("INSERT INTO audit VALUES (3, ?, 'mallory', 'approval', ?, ?, ?)", (at, detail, prev, good))
    db.close()
    verdict = verdict_of(chain)
    assert not verdict.ok and verdict.bad_seq == 4 and "inserted" in verdict.problem


def test_a_row_before_the_first_is_named(chain: Path) -> None:
    tamper(chain, "INSERT INTO audit VALUES (0, '2026-01-01T00:00:00+00:00', 'mallory', 'approval', '{}', ?, ?)",
           params=(GENESIS, "0" * 64))
    verdict = verdict_of(chain)
    assert not verdict.ok and verdict.bad_seq == 0 and "inserted" in verdict.problem


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    verdict = verdict_of(tmp_path / "empty.db")
    assert verdict.ok and verdict.rows == 0 and verdict.head_hash == GENESIS

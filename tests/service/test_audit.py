"""The audit log is append-only and hash-chained; ``audit verify`` names the first tampered row."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import orjson
import pytest

from broadcaster.anchors import Anchors, AnchorVerdict
from broadcaster.audit import GENESIS, AuditLog, Verdict, row_hash
from broadcaster.cli import main
from broadcaster.errors import IntegrityError
from broadcaster.store import Store
from tests.engine.providers import SECRETS, Providers
from tests.fakes.twilio import twilio_error
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
    every = [row async for row in api.service.audit.rows()]
    rows = [r for r in every if r.action != "alert_sealed"]
    assert [r.action for r in rows] == ["config_load", "fire", "update", "cancel", "forbidden", "login_failure"]
    assert [r.actor for r in rows] == ["service", "officer", "officer", "officer", "viewer", "anonymous"]
    loaded = orjson.loads(rows[0].detail)
    assert loaded["path"].endswith("channels.toml") and len(loaded["sha256"]) == 64
    fire = orjson.loads(rows[1].detail)
    assert fire["alert_id"] == fired["alert_id"] and fire["mode"] == "live" and fire["template"] == "road_closure"
    # Each alert is anchored as it is committed, and sealed once its deliveries are all final.
    committed = [orjson.loads(r.detail)["alert_id"] for r in rows[1:4]]
    assert all(len(orjson.loads(r.detail)["alert_sha256"]) == 64 for r in rows[1:4])
    assert sorted(orjson.loads(r.detail)["alert_id"] for r in every if r.action == "alert_sealed") == sorted(committed)
    anchors = Anchors()
    assert (await api.service.audit.verify(observe=anchors.observe)).ok
    assert await anchors.check(api.app.store) == AnchorVerdict(alerts=3, sealed=3)


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
    """Edit the file as someone with write access would: drop the audit log's append-only guards first."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for sql in statements:
            db.execute(sql, params if "?" in sql else ())
    finally:
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


# --- the alerts anchored to the chain, and its head kept elsewhere --------------------------------------------


@pytest.fixture
def fired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[Providers, str]:
    """A live CLI fire: one SMS refused by Twilio (failed), every other delivery sent; then a user added."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with Providers(tmp_path, recipients=3) as p:
        p.twilio.script(twilio_error(400, 21211, "The 'To' number is not a valid phone number."))
        assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                          as_user="officer")) == 1
        alert_id = orjson.loads(capsys.readouterr().out)["alert_id"]
    return p, alert_id


def cli(p: Providers, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(p.cli(*args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_fired_alert_is_anchored_and_sealed(fired: tuple[Providers, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    p, _alert_id = fired
    code, out = cli(p, capsys, "audit", "verify")
    assert code == 0 and "alerts OK: 1 alert(s) match their anchors; 1 sealed" in out


def test_an_edited_alert_is_named(fired: tuple[Providers, str], capsys: pytest.CaptureFixture[str]) -> None:
    p, alert_id = fired
    tamper(p.db, "DROP TRIGGER alerts_no_update", "UPDATE alerts SET areas = '[\"AUH\"]'")
    code, out = cli(p, capsys, "audit", "verify")
    assert code == 1 and f"TAMPERED at alert {alert_id}:" in out and "does not match its commit anchor" in out


def test_an_edited_final_state_names_the_delivery(fired: tuple[Providers, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    p, alert_id = fired
    db = sqlite3.connect(p.db)
    delivery, phone = db.execute("SELECT id, recipient FROM deliveries WHERE state = 'failed'").fetchone()
    db.close()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):  # the trigger refuses it
        tamper(p.db, f"UPDATE deliveries SET state = 'sent', last_error = NULL WHERE id = {delivery}")
    tamper(p.db, "DROP TRIGGER deliveries_final",
           f"UPDATE deliveries SET state = 'sent', last_error = NULL WHERE id = {delivery}")
    code, out = cli(p, capsys, "audit", "verify")
    assert code == 1 and f"TAMPERED at alert {alert_id}, delivery {delivery}:" in out
    assert f"(sms-residents to {phone}) no longer matches its seal" in out and "it is now sent" in out


def test_a_cut_tail_is_found_against_the_recorded_head(fired: tuple[Providers, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    p, _alert_id = fired
    assert main(p.cli("users", "add", "fatima", "--role", "officer")) == 0
    code, head = cli(p, capsys, "audit", "head")
    assert code == 0 and re.fullmatch(r"[0-9a-f]{64}:3\n", head)  # the fire, its seal, the new user
    assert cli(p, capsys, "audit", "verify", "--expect", head.strip())[0] == 0
    tamper(p.db, "DELETE FROM audit WHERE seq = 3")  # the last row: the chain alone cannot tell
    assert cli(p, capsys, "audit", "verify")[0] == 0
    code, out = cli(p, capsys, "audit", "verify", "--expect", head.strip())
    assert code == 1 and "TAMPERED at row 3: the log ends at row 2" in out and "row 3 was cut from its end" in out


def test_a_tail_rewritten_after_the_recorded_head_is_found(fired: tuple[Providers, str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    p, _alert_id = fired
    head = cli(p, capsys, "audit", "head")[1].strip()
    db = sqlite3.connect(p.db)
    seq, at, actor, action, detail, prev = db.execute(
        "SELECT seq, at, actor, action, detail, prev_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    db.close()
    forged = detail.replace('"deliveries":', '"deliveries_forged":')
    tamper(p.db, "UPDATE audit SET detail = ?, hash = ? WHERE seq = ?",
           params=(forged, row_hash(prev, seq, at, actor, action, forged), seq))
    code, out = cli(p, capsys, "audit", "verify", "--expect", head)
    assert code == 1 and f"row {seq} is not the row recorded as the head" in out


def test_a_malformed_expected_head_is_named(fired: tuple[Providers, str], capsys: pytest.CaptureFixture[str]) -> None:
    p, _alert_id = fired
    code, out = cli(p, capsys, "audit", "verify", "--expect", "abc:3")
    assert code == 2 and "--expect" in out and "64 hex digits" in out

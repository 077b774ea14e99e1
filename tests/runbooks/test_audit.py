"""A runbook step's fire is audited like any other: one row once committed, anchored and then sealed."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from broadcaster.anchors import Anchors, AnchorVerdict
from broadcaster.app.context import App
from broadcaster.app.runbook import host
from broadcaster.audit import AuditLog, AuditRow
from broadcaster.cli import main
from broadcaster.store import Store
from tests.engine.providers import SECRETS, Providers
from tests.runbooks.conftest import CLOSURE, closure, make_run, write_runbook
from tests.support import read


async def test_a_scheduled_steps_fire_leaves_one_audit_row_and_its_seal(tmp_path: Path, fast_app: App) -> None:
    scheduler = host(fast_app)
    await scheduler.start(paused=True)  # it leads, but executes nothing: the test runs the job
    try:
        run = make_run(fast_app.config, closure(tmp_path))
        await scheduler.start_run(run)
        fired = await scheduler._job(run.id, "closure", 0)
    finally:
        await scheduler.shutdown()
    assert fired is not None and fired.state == "fired" and fired.alert_id is not None
    audit = AuditLog(fast_app.store.db)
    rows = [r async for r in audit.rows()]
    assert [(r.actor, r.action) for r in rows] == [(f"runbook:{run.id}", "fire"), ("broadcaster", "alert_sealed")]
    detail = orjson.loads(rows[0].detail)
    assert detail["alert_id"] == fired.alert_id and detail["mode"] == "dry-run" and len(detail["alert_sha256"]) == 64
    assert detail["deliveries"] == len(await fast_app.store.alerts.deliveries(fired.alert_id))
    anchors = Anchors()
    assert (await audit.verify(observe=anchors.observe)).ok
    assert await anchors.check(fast_app.store) == AnchorVerdict(alerts=1, sealed=1)


def test_a_live_runbooks_steps_are_each_audited_once_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    text = CLOSURE.replace("AFTER", "0s") + '\n[[steps]]\nid = "mistake"\ncancel = "closure"\nafter = "1s"\n'
    with Providers(tmp_path, recipients=2) as p:
        assert main(p.cli("runbook", "run", str(write_runbook(tmp_path, text)), "--live", "--yes",
                          as_user="officer")) == 0
        capsys.readouterr()
        assert main(p.cli("audit", "verify")) == 0
        assert "alerts OK: 2 alert(s) match their anchors; 2 sealed" in capsys.readouterr().out

        async def every(store: Store) -> tuple[list[AuditRow], dict[str, str | None]]:
            (run,) = await store.runs.recent()
            return [r async for r in AuditLog(store.db).rows()], {
                s.step_id: s.alert_id for s in await store.runs.steps(run.id)}

        rows, steps = read(str(p.db), every)
    committed = [(r.actor, r.action, orjson.loads(r.detail)) for r in rows if r.action in ("fire", "cancel")]
    assert [(action, detail["alert_id"]) for _actor, action, detail in committed] == [
        ("fire", steps["closure"]), ("cancel", steps["mistake"])]
    # The officer who started the run asked for its alerts.
    assert all(actor == "officer" and detail["state"] == "sending" and detail["deliveries"] > 0
               and len(detail["alert_sha256"]) == 64 for actor, _action, detail in committed)

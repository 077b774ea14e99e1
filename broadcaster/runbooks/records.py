"""Rows of the ``runs`` and ``run_steps`` tables: what a runbook run did and will do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

RUN_KINDS: Final = ("rehearsal", "runbook", "schedule")
RUN_STATES: Final = ("running", "finished", "stopped")
# awaiting: needs an operator's confirmation · scheduled: a job will fire it · firing: claimed by a job
# fired · failed: could not be planned · missed: beyond the grace window · skipped: not needed any more
STEP_STATES: Final = ("awaiting", "scheduled", "firing", "fired", "failed", "missed", "skipped")
DONE_STATES: Final = frozenset({"fired", "failed", "missed", "skipped"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    kind: str  # rehearsal | runbook | schedule
    runbook: str  # runbook id (file stem), or the template id of a scheduled fire
    source: str | None  # the runbook file it was started from
    spec: dict[str, Any]  # the runbook as it was when the run started
    config: str | None  # channels.toml the run was started with
    mode: str  # dry-run | exercise | live
    inputs: dict[str, dict[str, str]]  # input name -> language -> value (relative times resolved)
    state: str  # running | finished | stopped
    started_at: float
    finished_at: float | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RunStepRow:
    run_id: str
    step_id: str
    occurrence: int
    state: str
    due_at: float | None
    confirmed_at: float | None
    fired_at: float | None
    alert_id: str | None
    owner: str | None
    detail: str | None

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES

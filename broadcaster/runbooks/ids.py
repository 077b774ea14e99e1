"""Ids of runbook runs, rehearsals and scheduled fires: never mistaken for an alert id."""

from __future__ import annotations

import secrets
import time

from broadcaster.states import RunKind


def new_run_id(kind: RunKind, now: float | None = None) -> str:
    """``run-…`` for runbook runs and rehearsals, ``sch-…`` for scheduled fires."""
    prefix = "sch" if kind == RunKind.SCHEDULE else "run"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"


def is_run_id(text: str) -> bool:
    return text.startswith(("run-", "sch-"))

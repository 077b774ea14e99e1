"""APScheduler's job store in the main database: the ``scheduler_jobs`` table, on either backend.

It behaves like APScheduler's own ``SQLAlchemyJobStore`` (the job state is
pickled; ``next_run_time`` is unix seconds, NULL for a paused job) but speaks
through :class:`broadcaster.store.sql.Database` in portable SQL, so the schedule
lives beside the runs it belongs to: in the SQLite file, or in the PostgreSQL
database every node shares (the schema comes from the ``0002_nodes`` migration).

The table is only ever written by this program, so unpickling its rows trusts
the database exactly as the rest of the store does.
"""

from __future__ import annotations

import logging
import pickle
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime

from broadcaster.store.sql import Database, marks

log = logging.getLogger("broadcaster.scheduler")

TABLE = "scheduler_jobs"


class DatabaseJobStore(BaseJobStore):  # type: ignore[misc]
    """Persistent APScheduler job store over a :class:`Database`; each call is one statement."""

    def __init__(self, db: Database, *, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        super().__init__()
        self.db = db
        self.pickle_protocol = pickle_protocol

    def lookup_job(self, job_id: str) -> Any:
        row = self.db.execute(f"SELECT job_state FROM {TABLE} WHERE id = ?", (job_id,)).fetchone()
        return self._reconstitute_job(row[0]) if row else None

    def get_due_jobs(self, now: datetime) -> list[Any]:
        return self._get_jobs("WHERE next_run_time <= ?", (datetime_to_utc_timestamp(now),))

    def get_next_run_time(self) -> datetime | None:
        row = self.db.execute(
            f"SELECT next_run_time FROM {TABLE} WHERE next_run_time IS NOT NULL ORDER BY next_run_time LIMIT 1"
        ).fetchone()
        return utc_timestamp_to_datetime(row[0]) if row else None

    def get_all_jobs(self) -> list[Any]:
        jobs = self._get_jobs()
        self._fix_paused_jobs_sorting(jobs)  # paused jobs (NULL next run) go last
        return jobs

    def add_job(self, job: Any) -> None:
        # ON CONFLICT DO NOTHING rather than catching a duplicate key: on PostgreSQL a failed
        # statement would abort a transaction the caller may have open.
        added = self.db.execute(
            f"INSERT INTO {TABLE} (id, next_run_time, job_state) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (job.id, datetime_to_utc_timestamp(job.next_run_time), self._state(job)),
        ).rowcount
        if added != 1:
            raise ConflictingIdError(job.id)

    def update_job(self, job: Any) -> None:
        changed = self.db.execute(
            f"UPDATE {TABLE} SET next_run_time = ?, job_state = ? WHERE id = ?",
            (datetime_to_utc_timestamp(job.next_run_time), self._state(job), job.id),
        ).rowcount
        if changed == 0:
            raise JobLookupError(job.id)

    def remove_job(self, job_id: str) -> None:
        if self.db.execute(f"DELETE FROM {TABLE} WHERE id = ?", (job_id,)).rowcount == 0:
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        self.db.execute(f"DELETE FROM {TABLE}")

    def _state(self, job: Any) -> bytes:
        return pickle.dumps(job.__getstate__(), self.pickle_protocol)

    def _reconstitute_job(self, job_state: bytes) -> Any:
        state = pickle.loads(bytes(job_state))
        state["jobstore"] = self
        job = Job.__new__(Job)
        job.__setstate__(state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _get_jobs(self, where: str = "", params: tuple[Any, ...] = ()) -> list[Any]:
        jobs = []
        failed: list[str] = []
        for job_id, job_state in self.db.execute(
                f"SELECT id, job_state FROM {TABLE} {where} ORDER BY next_run_time, id", params).fetchall():
            try:
                jobs.append(self._reconstitute_job(job_state))
            except Exception:
                # As SQLAlchemyJobStore does: a row that no longer unpickles (its function was renamed,
                # say) is dropped, or it would fail on every pass.
                log.exception("cannot restore scheduled job %r: removing it", job_id)
                failed.append(job_id)
        if failed:
            self.db.execute(f"DELETE FROM {TABLE} WHERE id IN ({marks(failed)})", failed)
        return jobs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self.db.dialect} {TABLE})>"

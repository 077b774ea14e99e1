-- A runbook step whose live two-person alert waits for a second officer is 'held': nothing was sent,
-- and the run goes no further until someone confirms it (or its window closes). SQLite cannot alter a
-- CHECK constraint, so the table is rebuilt with the new state allowed.
CREATE TABLE run_steps_new (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id),
    step_id TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('awaiting', 'scheduled', 'firing', 'held', 'fired', 'failed', 'missed', 'skipped')),
    due_at REAL,
    confirmed_at REAL,
    fired_at REAL,
    alert_id TEXT,
    owner TEXT,
    detail TEXT,
    UNIQUE (run_id, step_id, occurrence)
);
INSERT INTO run_steps_new (id, run_id, step_id, occurrence, state, due_at, confirmed_at, fired_at, alert_id, owner,
                           detail)
    SELECT id, run_id, step_id, occurrence, state, due_at, confirmed_at, fired_at, alert_id, owner, detail
    FROM run_steps;
DROP TABLE run_steps;
ALTER TABLE run_steps_new RENAME TO run_steps;
-- Who started a run: a held step's alert is that officer's request, so the same officer cannot confirm it.
ALTER TABLE runs ADD COLUMN started_by TEXT;

-- A runbook step whose live two-person alert waits for a second officer is 'held': nothing was sent,
-- and the run goes no further until someone confirms it (or its window closes).
ALTER TABLE run_steps DROP CONSTRAINT run_steps_state_check;
ALTER TABLE run_steps ADD CONSTRAINT run_steps_state_check
    CHECK (state IN ('awaiting', 'scheduled', 'firing', 'held', 'fired', 'failed', 'missed', 'skipped'));
-- Who started a run: a held step's alert is that officer's request, so the same officer cannot confirm it.
ALTER TABLE runs ADD COLUMN started_by TEXT;

-- The scheduler's lead is a lease on a row, renewed by the leader and judged on the database's clock:
-- a leader that stalls loses it when the lease runs out, and knows so by its own monotonic clock.
CREATE TABLE leadership (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL,
    since DOUBLE PRECISION NOT NULL
);
-- The schedule lives in run_steps alone: the leader keeps its timers in memory and rebuilds them from
-- the rows it finds, so APScheduler's pickled copy of every job is no longer kept.
DROP TABLE scheduler_jobs;

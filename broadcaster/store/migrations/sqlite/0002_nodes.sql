-- Several nodes on one database: who is alive, the shared per-channel rate, the schedule.

-- Every process that delivers (worker, serve, fire) registers here and beats its heart.
-- Its id is the lease owner tag it writes on the deliveries it claims.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    role TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stopped_at REAL
);
-- The next free send slot of each channel, shared by every node: a node reserves a block
-- of slots at a time, so the sum over nodes never exceeds the channel's rate.
CREATE TABLE rate_slots (
    channel_id TEXT PRIMARY KEY,
    next_slot REAL NOT NULL,
    paused_until REAL NOT NULL DEFAULT 0
);
-- APScheduler jobs (pickled by APScheduler), read by the one scheduler leader.
CREATE TABLE scheduler_jobs (
    id TEXT PRIMARY KEY,
    next_run_time REAL,
    job_state BLOB NOT NULL
);
CREATE INDEX scheduler_jobs_next ON scheduler_jobs (next_run_time);
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE state = 'sending';
-- Which node made each attempt (the lease owner that claimed it).
ALTER TABLE attempts ADD COLUMN node TEXT;

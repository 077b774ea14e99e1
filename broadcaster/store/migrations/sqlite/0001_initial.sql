-- The schema as first released (SQLite). Later changes are new numbered files, never edits here.
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('dry-run', 'exercise', 'live')),
    msg_type TEXT NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    refs TEXT REFERENCES alerts(id),
    sent_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    areas TEXT NOT NULL,
    channels TEXT NOT NULL,
    inputs TEXT NOT NULL,
    forms TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts(id),
    key TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    language TEXT NOT NULL,
    text TEXT NOT NULL,
    payload BLOB,
    UNIQUE (alert_id, key)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts(id),
    channel_id TEXT NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    language TEXT NOT NULL,
    recipient TEXT,
    reply_to TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    lease_until REAL,
    lease_owner TEXT,
    provider_id TEXT,
    last_error TEXT
);
-- One SMS per phone per alert, whatever list or channel it came from.
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_one_per_phone
    ON deliveries (alert_id, recipient) WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (channel_id, state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries (alert_id, channel_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    http_status INTEGER,
    error_code TEXT,
    provider_id TEXT,
    latency_ms REAL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
-- Runbook runs, rehearsals and scheduled fires, and what each of their steps did.
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('rehearsal', 'runbook', 'schedule')),
    runbook TEXT NOT NULL,
    source TEXT,
    spec TEXT NOT NULL,
    config TEXT,
    mode TEXT NOT NULL CHECK (mode IN ('dry-run', 'exercise', 'live')),
    inputs TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'finished', 'stopped')),
    started_at REAL NOT NULL,
    finished_at REAL,
    detail TEXT
);
-- One row per step occurrence; a job claims its row (scheduled -> firing) before it fires,
-- so a job that runs twice fires once.
CREATE TABLE IF NOT EXISTS run_steps (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id),
    step_id TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('awaiting', 'scheduled', 'firing', 'fired', 'failed', 'missed', 'skipped')),
    due_at REAL,
    confirmed_at REAL,
    fired_at REAL,
    alert_id TEXT,
    owner TEXT,
    detail TEXT,
    UNIQUE (run_id, step_id, occurrence)
);
-- The HTTP service (broadcaster.service): API users, the audit chain, two-person
-- fires awaiting a second officer, and Twilio delivery receipts.
CREATE INDEX IF NOT EXISTS deliveries_provider ON deliveries (provider_id) WHERE provider_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'officer', 'approver')),
    token_id TEXT NOT NULL UNIQUE,
    token_salt BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS pending_fires (
    alert_id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    mode TEXT NOT NULL,
    request TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at REAL NOT NULL,
    confirm_by REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'awaiting_confirmation',
    confirmed_by TEXT,
    confirmed_at REAL
);
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY,
    message_sid TEXT NOT NULL,
    status TEXT NOT NULL,
    final TEXT,
    error_code TEXT,
    received_at REAL NOT NULL,
    UNIQUE (message_sid, status)
);

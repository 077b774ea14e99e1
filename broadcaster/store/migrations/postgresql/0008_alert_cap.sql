-- The CAP 1.2 document of each alert, built when the alert is planned and committed with it in the same
-- transaction: `broadcaster cap` and /cap/{id}.xml serve it as it was fired, never rebuilt from today's
-- template files. The alerts triggers of 0006 keep it unchanged (adding a column changes no row), and the
-- anchor hash of an alert covers it. NULL for alerts from before this migration.
ALTER TABLE alerts ADD COLUMN cap TEXT;
-- An update or cancel references every unexpired alert of its thread: the thread is found by refs.
CREATE INDEX alerts_refs ON alerts (refs);

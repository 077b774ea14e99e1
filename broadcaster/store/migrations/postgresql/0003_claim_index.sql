-- A claim reads the due deliveries of one channel in (next_attempt_at, id) order and stops at its
-- batch size; this index hands them over in that order, so no claim sorts the whole queue.
CREATE INDEX deliveries_claimable ON deliveries (channel_id, next_attempt_at, id)
    WHERE state IN ('pending', 'unknown');
-- It also answers "when is the next one due", which the older index was for: one index less to
-- update on every claim and every outcome.
DROP INDEX deliveries_due;

-- Alerts, their messages and every delivery's final state, anchored to the hash-chained audit log.
--
-- An alert and its messages never change once committed; a delivery's final state (sent, failed, expired,
-- withdrawn) and a finished attempt never change either. These triggers refuse the edit (and TRUNCATE);
-- the audit chain shows it if someone dropped them first (`broadcaster audit verify`). The row triggers
-- on deliveries and attempts have a WHEN that is false on the hot path (a claim or an outcome moves an
-- open delivery and an unfinished attempt), so their function never runs while sending.
CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER alerts_append_only BEFORE UPDATE OR DELETE ON alerts
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER messages_append_only BEFORE UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER deliveries_final BEFORE UPDATE ON deliveries
    FOR EACH ROW WHEN (OLD.state IN ('sent', 'failed', 'expired', 'withdrawn')) EXECUTE FUNCTION append_only();
CREATE TRIGGER deliveries_no_delete BEFORE DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION append_only();
-- A finished attempt keeps its outcome. Two writes stay allowed: a late outcome over the 'unknown' that a
-- recovery closed it with (a stalled node's answer is kept on its own attempt), and the same outcome
-- written again (a batch retried after its commit's answer was lost).
CREATE TRIGGER attempts_finished BEFORE UPDATE ON attempts
    FOR EACH ROW WHEN (OLD.outcome IS NOT NULL AND OLD.outcome <> 'unknown' AND OLD IS DISTINCT FROM NEW)
    EXECUTE FUNCTION append_only();
CREATE TRIGGER attempts_no_delete BEFORE DELETE ON attempts
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER anchored_no_truncate BEFORE TRUNCATE ON alerts
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER anchored_no_truncate BEFORE TRUNCATE ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER anchored_no_truncate BEFORE TRUNCATE ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER anchored_no_truncate BEFORE TRUNCATE ON attempts
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
-- The seal of an alert whose deliveries are all final: one digest per delivery (its final state and every
-- attempt, in delivery id order), whose sha256 an `alert_sealed` audit row carries (audit_seq).
CREATE TABLE seals (
    alert_id TEXT PRIMARY KEY REFERENCES alerts(id),
    audit_seq BIGINT NOT NULL,
    sealed_at DOUBLE PRECISION NOT NULL,
    deliveries INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    digests TEXT NOT NULL
);
CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON seals
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER anchored_no_truncate BEFORE TRUNCATE ON seals
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

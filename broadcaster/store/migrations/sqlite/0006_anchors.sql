-- Alerts, their messages and every delivery's final state, anchored to the hash-chained audit log.
--
-- An alert and its messages never change once committed; a delivery's final state (sent, failed, expired,
-- withdrawn) and a finished attempt never change either. These triggers refuse the edit; the audit chain
-- shows it if someone dropped them first (`broadcaster audit verify`). Each is a BEFORE trigger with a
-- WHEN that is false on the hot path (a claim or an outcome moves an open delivery and an unfinished
-- attempt), so sending costs nothing more.
CREATE TRIGGER alerts_no_update BEFORE UPDATE ON alerts
    BEGIN SELECT RAISE(ABORT, 'an alert is append-only'); END;
CREATE TRIGGER alerts_no_delete BEFORE DELETE ON alerts
    BEGIN SELECT RAISE(ABORT, 'an alert is append-only'); END;
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
    BEGIN SELECT RAISE(ABORT, 'a message is append-only'); END;
CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages
    BEGIN SELECT RAISE(ABORT, 'a message is append-only'); END;
CREATE TRIGGER deliveries_final BEFORE UPDATE ON deliveries
    WHEN OLD.state IN ('sent', 'failed', 'expired', 'withdrawn')
    BEGIN SELECT RAISE(ABORT, 'a delivery in a final state is append-only'); END;
CREATE TRIGGER deliveries_no_delete BEFORE DELETE ON deliveries
    BEGIN SELECT RAISE(ABORT, 'a delivery is append-only'); END;
-- A finished attempt keeps its outcome. Two writes stay allowed: a late outcome over the 'unknown' that a
-- recovery closed it with (a stalled node's answer is kept on its own attempt), and the same outcome
-- written again (a batch retried after its commit's answer was lost).
CREATE TRIGGER attempts_finished BEFORE UPDATE ON attempts
    WHEN OLD.outcome IS NOT NULL AND OLD.outcome <> 'unknown' AND (
        NEW.outcome IS NOT OLD.outcome OR NEW.http_status IS NOT OLD.http_status
        OR NEW.error_code IS NOT OLD.error_code OR NEW.provider_id IS NOT OLD.provider_id
        OR NEW.detail IS NOT OLD.detail OR NEW.started_at IS NOT OLD.started_at
        OR NEW.finished_at IS NOT OLD.finished_at OR NEW.latency_ms IS NOT OLD.latency_ms
        OR NEW.delivery_id IS NOT OLD.delivery_id OR NEW.attempt IS NOT OLD.attempt OR NEW.node IS NOT OLD.node)
    BEGIN SELECT RAISE(ABORT, 'a finished attempt is append-only'); END;
CREATE TRIGGER attempts_no_delete BEFORE DELETE ON attempts
    BEGIN SELECT RAISE(ABORT, 'an attempt is append-only'); END;
-- The seal of an alert whose deliveries are all final: one digest per delivery (its final state and every
-- attempt, in delivery id order), whose sha256 an `alert_sealed` audit row carries (audit_seq).
CREATE TABLE seals (
    alert_id TEXT PRIMARY KEY REFERENCES alerts(id),
    audit_seq INTEGER NOT NULL,
    sealed_at REAL NOT NULL,
    deliveries INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    digests TEXT NOT NULL
);
CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals
    BEGIN SELECT RAISE(ABORT, 'a seal is append-only'); END;
CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals
    BEGIN SELECT RAISE(ABORT, 'a seal is append-only'); END;

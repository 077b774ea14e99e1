-- The short code of an alert's public verification link ({public_url}/v/CODE), for alerts whose template asks
-- for a verification line. Written in the outbox commit with the alert; the primary key makes one code name one
-- alert, and the unique alert_id one code per alert. Append-only like the alert: the code is in its texts.
CREATE TABLE verify_codes (
    short TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE REFERENCES alerts(id)
);
CREATE TRIGGER verify_codes_append_only BEFORE UPDATE OR DELETE ON verify_codes
    FOR EACH ROW EXECUTE FUNCTION append_only();

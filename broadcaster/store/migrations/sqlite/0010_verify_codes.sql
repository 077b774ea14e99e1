-- The short code of an alert's public verification link ({public_url}/v/CODE), for alerts whose template asks
-- for a verification line. Written in the outbox commit with the alert; the primary key makes one code name one
-- alert, and the unique alert_id one code per alert. Append-only like the alert: the code is in its texts.
CREATE TABLE verify_codes (
    short TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE REFERENCES alerts(id)
);
CREATE TRIGGER verify_codes_no_update BEFORE UPDATE ON verify_codes
    BEGIN SELECT RAISE(ABORT, 'a verification code is append-only'); END;
CREATE TRIGGER verify_codes_no_delete BEFORE DELETE ON verify_codes
    BEGIN SELECT RAISE(ABORT, 'a verification code is append-only'); END;

-- API tokens expire. A user row states when its current token stops working (unix seconds):
-- `broadcaster users add` and `users rotate` set it (channels.toml's token_expiry, or --expires).
-- A row written without it is expired at once (DEFAULT 0): a token never lives forever by omission.
ALTER TABLE users ADD COLUMN expires_at DOUBLE PRECISION NOT NULL DEFAULT 0;
-- Tokens issued before this version keep working for 90 days from the upgrade, then must be rotated.
UPDATE users SET expires_at = EXTRACT(EPOCH FROM clock_timestamp()) + 7776000.0;

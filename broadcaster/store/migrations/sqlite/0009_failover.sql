-- SMS failover (issue 14): when a channel's circuit opens, its pending deliveries move to its fallback channel,
-- and back once it recovers. A delivery keeps the channel the outbox gave it (home_channel, set at its first
-- move), and each attempt the channel it was made on: after a move the delivery's channel_id is no longer the
-- channel of its earlier attempts. A move is itself a row in attempts (outcome 'moved'), so the delivery log
-- tells it. NULL in both for rows from before this migration, and for a delivery that never moved.
ALTER TABLE deliveries ADD COLUMN home_channel TEXT;
ALTER TABLE attempts ADD COLUMN channel_id TEXT;

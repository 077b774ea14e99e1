"""The delivery engine: outbox, dispatcher, retry policy and rate limits."""

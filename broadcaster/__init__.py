"""Crisis broadcaster: one pre-approved bilingual message on every official channel at once."""

__version__ = "0.1.0"

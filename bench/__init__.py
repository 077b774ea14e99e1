"""Delivery-engine benchmark: ``python -m bench`` (see bench/README.md)."""

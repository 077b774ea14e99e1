"""Numeric command-line options: finite numbers inside stated bounds, or argparse's usage error (exit 2).

``type=float`` alone takes ``nan``, ``inf`` and ``-5``; a worker beating every
``nan`` seconds never beats, and one told a node is dead after ``inf`` seconds never
recovers a lease.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type``: seconds from ``low`` to ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number of seconds from {low:g} to {high:g}, not {text!r}")
        return value

    return parse


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` in ASCII digits."""
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 12) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text!r}")
        return int(text)

    return parse

"""Query parameters: plain ASCII whole numbers inside stated bounds, or a 400 naming the parameter.

``str.isdigit`` is not enough: it is true for ``"²"`` and ``"١"`` (which ``int``
then refuses or reads), and a 5,000-digit number overflows the database
driver. Every numeric parameter is read here, with its bounds said in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from broadcaster.service.http import ApiError
from broadcaster.states import Mode

_MAX_DIGITS: Final = 12


@dataclass(frozen=True)
class IntParam:
    """A numeric query parameter: its name, default and inclusive bounds."""

    name: str
    default: int
    low: int
    high: int
    meaning: str = ""

    def read(self, request: web.Request) -> int:
        raw = request.query.get(self.name)
        if raw is None:
            return self.default
        if not (0 < len(raw) <= _MAX_DIGITS and raw.isascii() and raw.isdigit()) or not (
                self.low <= int(raw) <= self.high):
            shown = raw if len(raw) <= 20 else raw[:20] + "…"
            raise ApiError(400, "invalid", f"{self.name}: must be a whole number from {self.low} to {self.high} "
                           f"written in ASCII digits{self.meaning}, not {shown!r}", field=self.name)
        return int(raw)

    def schema(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return {"name": self.name, "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": self.low, "maximum": self.high, "default": self.default}}


MAX_ALERTS: Final = 200
MAX_PAGE: Final = 100_000
MAX_OFFSET: Final = 100_000_000

ALERTS_LIMIT: Final = IntParam("limit", 50, 1, MAX_ALERTS)


def read_modes(request: web.Request) -> list[Mode] | None:
    """``?mode=live,exercise``: only alerts of those modes (the console's history hides dry-runs); None: all."""
    raw = request.query.get("mode")
    if raw is None:
        return None
    names = raw.split(",")  # exactly: no spaces, no empty names, lower case (as every other parameter)
    known = {str(m) for m in Mode}
    bad = [name for name in names if name not in known]
    if bad:
        shown = bad[0][:20]
        raise ApiError(400, "invalid", f"mode: each must be one of {', '.join(sorted(known))}, comma-separated, "
                       f"not {shown!r}", field="mode")
    return [Mode(name) for name in dict.fromkeys(names)]


MODES_PARAM: Final = {"name": "mode", "in": "query", "required": False, "schema": {"type": "string"},
                      "description": "comma-separated modes to list (dry-run, exercise, live); default: all"}
PAGE_LIMIT: Final = IntParam("limit", 0, 0, MAX_PAGE, " (0: no limit)")
PAGE_OFFSET: Final = IntParam("offset", 0, 0, MAX_OFFSET)

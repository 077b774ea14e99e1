"""Public verification: ``GET /verify/{alert_id}`` and its short form ``GET /v/{code}``. No token needed.

The page a verification line links to ("تحقق: {public_url}/v/CODE"): anyone who
got a message can see what the authority really sent, when, its signature
status, and whether it was updated or cancelled (:mod:`broadcaster.app.verification`
decides what is public; :mod:`broadcaster.service.verify_page` writes the HTML).
Live alerts and exercises (marked as such) are shown; a dry-run, an unknown id or
code answer 404 with a page that says, in both languages, that this is not an
official alert id: a spoofed link is recognisable.

A crisis brings the public all at once: each answer is one to three small store
reads and no template rendering, and may be cached for a minute (a 404 for
fifteen seconds); the page holds at most 40 texts of 4,000 characters.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from broadcaster.app.verification import by_code, verification
from broadcaster.service.state import SERVICE, Service
from broadcaster.service.verify_page import not_found, page

FOUND_CACHE: Final = "public, max-age=60"
MISSING_CACHE: Final = "public, max-age=15"


def register(web_app: web.Application) -> None:
    """Add the two public routes."""
    web_app.router.add_get("/verify/{alert_id}", verify_alert)
    web_app.router.add_get("/v/{code}", verify_code)


async def verify_alert(request: web.Request) -> web.Response:
    return await _answer(request.app[SERVICE], request.match_info["alert_id"])


async def verify_code(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    code = request.match_info["code"]
    alert_id = await by_code(service.app, code)
    return await _answer(service, alert_id, requested=code)


async def _answer(service: Service, alert_id: str | None, *, requested: str | None = None) -> web.Response:
    config = service.config
    authority = dict(config.authority) if config.authority else {"ar": config.sender, "en": config.sender}
    found = await verification(service.app, alert_id) if alert_id is not None else None
    if found is None:
        body = not_found(requested if requested is not None else alert_id or "", authority=authority)
        return web.Response(text=body, status=404, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": MISSING_CACHE})
    body = page(found, authority=authority, tz=config.timezone, now=service.clock.now())
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": FOUND_CACHE})

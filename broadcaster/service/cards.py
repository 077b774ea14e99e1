"""Alert cards over HTTP: ``GET /cards/{alert_id}/{lang}.png`` (public) and ``POST /api/preview/cards/{lang}``.

The public route is where Instagram fetches each post's image, so it needs no
token, like the CAP feed. It serves the cards of live and exercise alerts (an
exercise card is marked across: an exercise Instagram account must be able to
fetch it too); a dry-run's card, an unknown alert or language is 404. A card
never changes once its alert exists, so the answer may be cached; this server
keeps the last few it drew.

The console shows the cards of its preview through the second route: the same
body as ``POST /api/preview``, and the PNG of the one language asked for.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from aiohttp import web

from broadcaster.app.cards import plan_cards, published_card
from broadcaster.errors import InputError
from broadcaster.service.api import preview_plan
from broadcaster.service.http import input_error
from broadcaster.service.state import SERVICE
from broadcaster.templates.catalogue import LANGUAGES

KEPT: Final = 32  # cards held in memory, newest last
PNG: Final = "image/png"
CACHE: Final = web.AppKey("cards_cache", OrderedDict[tuple[str, str], bytes])


def register(web_app: web.Application) -> None:
    """Add the two card routes (and their small cache) to the service."""
    web_app[CACHE] = OrderedDict()
    web_app.router.add_get(r"/cards/{alert_id:[A-Za-z0-9_-]+}/{lang:[a-z]{2}}.png", public_card)
    web_app.router.add_post(r"/api/preview/cards/{lang:[a-z]{2}}", preview_card)


async def public_card(request: web.Request) -> web.Response:
    alert_id, lang = request.match_info["alert_id"], request.match_info["lang"]
    cache = request.app[CACHE]
    png = cache.get((alert_id, lang))
    if png is None:
        png = await published_card(request.app[SERVICE].app, alert_id, lang)
        if png is None:
            # Dry-run cards are not public: the same answer as for no alert at all.
            raise web.HTTPNotFound(text=f"no public card {alert_id}/{lang}")
        cache[(alert_id, lang)] = png
        while len(cache) > KEPT:
            cache.popitem(last=False)
    else:
        cache.move_to_end((alert_id, lang))
    return web.Response(body=png, content_type=PNG, headers={"Cache-Control": "public, max-age=86400"})


async def preview_card(request: web.Request) -> web.Response:
    """The card a preview would carry in one language (what ``POST /api/preview`` renders, drawn)."""
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound(text=f"no card language {lang!r}")
    _, plan = await preview_plan(request)
    try:
        cards = await plan_cards(plan, [lang])
    except InputError as exc:
        raise input_error(exc) from None
    return web.Response(body=cards[lang].png, content_type=PNG, headers={"Cache-Control": "no-store"})

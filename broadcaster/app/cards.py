"""Alert cards for the faces: the ones ``serve`` publishes, the ones a preview writes or shows.

Every face gets a card the same way: its content from the alert (or the plan)
through :func:`broadcaster.engine.outbox.alert_card_contents`, drawn on a worker
thread, never on the event loop. Only live and exercise alerts have public cards:
a dry-run never left this machine, so neither does its card.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from broadcaster.app.context import App
from broadcaster.cards.render import Card, render_cards
from broadcaster.clock import in_thread
from broadcaster.engine.outbox import Plan, alert_card_contents
from broadcaster.states import Mode
from broadcaster.templates.catalogue import LANGUAGES

PUBLIC_MODES: Final = frozenset({Mode.LIVE, Mode.EXERCISE})


async def published_card(app: App, alert_id: str, language: str) -> bytes | None:
    """The PNG of a live or exercise alert's card in ``language``; None when there is no such public card."""
    if language not in LANGUAGES:
        return None
    alert = await app.store.alerts.find(alert_id)
    if alert is None or alert.mode not in PUBLIC_MODES:
        return None
    contents = alert_card_contents(app.config, app.catalogue, alert)
    cards = await in_thread(render_cards, contents, [language])
    return cards[language].png


async def plan_cards(plan: Plan, languages: Iterable[str] = LANGUAGES) -> dict[str, Card]:
    """The plan's cards in ``languages``: those it already drew for its channels, the rest drawn now."""
    wanted = [lang for lang in LANGUAGES if lang in set(languages)]
    missing = [lang for lang in wanted if lang not in plan.cards]
    drawn = await in_thread(render_cards, plan.card_contents, missing) if missing else {}
    return {lang: plan.cards.get(lang) or drawn[lang] for lang in wanted}


async def write_cards(plan: Plan, folder: Path) -> list[Path]:
    """Both languages' cards of ``plan`` as ``{folder}/{alert_id}-{lang}.png``; the paths written."""
    cards = await plan_cards(plan)

    def write() -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for lang, card in cards.items():
            path = folder / f"{plan.alert.id}-{lang}.png"
            path.write_bytes(card.png)
            written.append(path)
        return written

    return await in_thread(write)


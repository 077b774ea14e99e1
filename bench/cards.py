"""Scenario 16: alert cards, both languages of one alert, drawn off the event loop.

Every shipped template is planned with its examples, live and then exercise (the
exercise card has the striped frame and the marker band, the costlier one), and
its two cards are drawn the way ``fire`` draws them: ``await in_thread(render_cards, ...)``
from the event loop. The figure is the wall time of that await, per alert; the
first live and exercise alerts of the process (fonts and libraqm loading, the
marker band drawn once) are reported apart. Meanwhile a ticker on the loop wakes
every 5 ms: its worst lateness shows the loop was free while the cards were drawn.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.harness import REPO
from bench.report import add, heading
from broadcaster.app.context import load
from broadcaster.cards.render import render_cards
from broadcaster.clock import in_thread
from broadcaster.engine.outbox import plan_alert
from broadcaster.states import Mode
from broadcaster.templates.variables import example_inputs

BOUND_MS = 150.0
LAG_BOUND_MS = 50.0
TICK_S = 0.005


async def _measure(rounds: int) -> tuple[float, list[float], float]:
    config, catalogue, _ = load(str(REPO / "channels.toml"))
    contents = []
    for template_id in catalogue.ids():
        template = catalogue.get(template_id)
        for mode in (Mode.LIVE, Mode.EXERCISE):
            now = time.time()
            plan = await plan_alert(config, catalogue, template_id, example_inputs(template, now, config.timezone),
                                    mode=mode, now=now, require_approval=False)
            contents.append(plan.card_contents)
    worst_lag = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst_lag
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            worst_lag = max(worst_lag, loop.time() - due)

    started = time.perf_counter()
    await in_thread(render_cards, contents[0])  # live
    await in_thread(render_cards, contents[1])  # exercise: the marker band, drawn once per process
    cold = (time.perf_counter() - started) * 1000
    ticking = asyncio.create_task(ticker())
    warm = []
    for _ in range(rounds):
        for content in contents:
            started = time.perf_counter()
            await in_thread(render_cards, content)
            warm.append((time.perf_counter() - started) * 1000)
    stop.set()
    await ticking
    return cold, warm, worst_lag * 1000


def scenario_cards(rounds: int) -> None:
    heading("16", "alert cards: both languages of one alert, drawn off the event loop",
            "every shipped template, live and exercise, drawn as fire draws them (in_thread(render_cards));\n"
            "a 5 ms ticker on the loop meanwhile: its worst lateness")
    cold, warm, lag = asyncio.run(_measure(rounds))
    add("16 cards", "first live + exercise alert (fonts, libraqm, band)", f"{cold:.0f} ms", "info", None)
    median, worst = statistics.median(warm), max(warm)
    add("16 cards", f"both languages, {len(warm)} alerts: median / max", f"{median:.0f} / {worst:.0f} ms",
        f"<= {BOUND_MS:.0f} ms", worst <= BOUND_MS)
    add("16 cards", "event-loop lateness while drawing, max", f"{lag:.1f} ms", f"<= {LAG_BOUND_MS:.0f} ms",
        lag <= LAG_BOUND_MS)

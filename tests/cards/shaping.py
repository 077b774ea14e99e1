"""Reading a card's pixels: is its Arabic shaped (joined letters) and laid out right to left?

The probe headline is ``ا ببببببب``: a lone alef (the tallest letter), then a word of
seven behs. Shaped and ordered, the alef stands at the right end of the line and
the behs join into one stroke: two runs of inked columns. Laid out without
shaping (Pillow's basic layout), the alef stands at the left and each beh is a
separate isolated letter: eight runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from broadcaster.cards.content import CardContent
from broadcaster.cards.render import Card

PROBE = "ا ببببببب"
INK_BELOW = 128


def probe_content(**changes: object) -> CardContent:
    fields: dict[str, object] = {
        "language": "ar", "kicker": "تنبيه · اختبار", "headline": PROBE, "facts": (("المنطقة", "دبي"),),
        "authority": "الهيئة", "alert_id": "20261123-180000-ab12cd", "exercise": False, "severity": "Severe",
    }
    fields.update(changes)
    return CardContent(**fields)  # type: ignore[arg-type]


def pixels(card: Card) -> Image.Image:
    return Image.open(io.BytesIO(card.png))


@dataclass(frozen=True)
class Reading:
    ink_runs: int  # runs of columns holding ink, left to right
    tallest_at: float  # where the highest ink stands, 0 = left edge of the line, 1 = right edge


def read_line(card: Card, name: str = "headline") -> Reading:
    line = pixels(card).convert("L").crop(card.boxes[name])
    width, height = line.size
    px = line.load()
    assert px is not None
    tops = [next((y for y in range(height) if px[x, y] < INK_BELOW), height) for x in range(width)]
    inked = [top < height for top in tops]
    runs = sum(1 for x in range(width) if inked[x] and (x == 0 or not inked[x - 1]))
    tallest = min(range(width), key=lambda x: tops[x])
    return Reading(runs, tallest / max(1, width - 1))


def assert_shaped_right_to_left(card: Card) -> None:
    """Fails unless the probe headline on ``card`` is joined (two ink runs) with its alef on the right."""
    reading = read_line(card)
    assert reading.ink_runs == 2, f"letters not joined: {reading.ink_runs} separate runs of ink, expected 2"
    assert reading.tallest_at > 0.8, f"not right to left: the first letter stands at {reading.tallest_at:.0%}"

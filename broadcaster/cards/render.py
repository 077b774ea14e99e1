"""Draw alert cards: a 1080×1080 PNG per language, Arabic shaped and right to left.

Text is laid out by Pillow's libraqm engine (HarfBuzz shaping, FriBiDi ordering),
so Arabic letters take their joined forms and a line runs right to left with
Latin words (isolated in the approved text) kept in their own order. The font is
Noto Sans Arabic (OFL), which also carries the Latin letters, from the
``fontpkg-noto-sans-arabic`` package: never a system font, so a card looks the
same on every node.

The card, top to bottom: a header in the template's severity colour (what kind
of alert, and its title), the approved headline, the key facts (where, issued,
valid until), then the issuing authority and the alert id. An exercise card has
a striped frame and the marker ``[تمرين]  [EXERCISE]`` in a band across it.

Nothing is ever cut: text that does not fit its box at the smallest size is a
:class:`~broadcaster.errors.TemplateError` (``templates check`` proves the worst
case). Rendering is CPU work of tens of milliseconds: callers on the event loop
run it through :func:`broadcaster.clock.in_thread`. Pillow is imported on first use.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from broadcaster.cards.content import CardContent, place_list
from broadcaster.errors import TemplateError
from broadcaster.templates.render import INITIATORS, PDI

if TYPE_CHECKING:
    from PIL import ImageDraw, ImageFont

SIZE: Final = 1080
MARGIN: Final = 72
WIDTH: Final = SIZE - 2 * MARGIN
HEADER: Final = (0, 180)
HEADLINE: Final = (220, 640)
FACTS: Final = (680, 960)
FOOTER_RULE: Final = 978
FOOTER_Y: Final = 1000
HEADLINE_SIZES: Final = tuple(range(84, 43, -4))
KICKER_SIZES: Final = tuple(range(46, 29, -2))
FACT_SIZES: Final = (36, 32, 28)
LABEL_COLUMN: Final = 250
BOLD: Final = 700
REGULAR: Final = 400
INK: Final = (20, 24, 28)
MUTED: Final = (84, 94, 104)
RULE: Final = (205, 210, 215)
MARKER_AMBER: Final = (255, 196, 0)
SEVERITY_COLOURS: Final = {
    "Extreme": (122, 0, 0),
    "Severe": (183, 28, 28),
    "Moderate": (191, 54, 12),
    "Minor": (21, 101, 192),
    "Unknown": (55, 71, 79),
}
Box = tuple[int, int, int, int]


class Engine(Enum):
    """The text layout: RAQM shapes and orders (always, in production); BASIC only proves the tests can tell."""

    RAQM = "raqm"
    BASIC = "basic"


@dataclass(frozen=True, slots=True)
class Card:
    """One rendered card: the PNG, and where each element was drawn (for checks and tests)."""

    language: str
    png: bytes
    boxes: Mapping[str, Box] = field(default_factory=dict)


def font_file() -> Path:
    """The bundled Noto Sans Arabic variable font (weights 100-900), from its Python package."""
    import fontpkg_noto_sans_arabic

    found = sorted((Path(fontpkg_noto_sans_arabic.ROOT) / "files").glob("NotoSansArabic*.ttf"))
    if not found:
        raise FileNotFoundError("fontpkg-noto-sans-arabic is installed without its font file")
    return found[0]


def require_shaping() -> None:
    """Refuse to draw rather than draw unjoined, left-to-right Arabic: Pillow would fall back without a word."""
    from PIL import features

    if not features.check("raqm"):
        raise RuntimeError("alert cards need Pillow's libraqm layout, which needs FriBiDi: install Debian's "
                           "libfribidi0 (apt-get install libfribidi0); Arabic is never drawn unshaped")


class Fonts:
    """The font at each (size, weight) one rendering needs; built per call, so threads never share one."""

    def __init__(self, engine: Engine = Engine.RAQM, data: bytes | None = None) -> None:
        if engine is Engine.RAQM:
            require_shaping()
        self.engine = engine
        self._data = data if data is not None else font_file().read_bytes()
        self._made: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}

    def get(self, size: int, weight: int = REGULAR) -> ImageFont.FreeTypeFont:
        font = self._made.get((size, weight))
        if font is None:
            from PIL import ImageFont

            layout = ImageFont.Layout.RAQM if self.engine is Engine.RAQM else ImageFont.Layout.BASIC
            font = ImageFont.truetype(io.BytesIO(self._data), size, layout_engine=layout)
            font.set_variation_by_axes([weight, 100])  # axes: weight, width
            self._made[(size, weight)] = font
        return font


class _Writer:
    """Draws lines of one language on one card: alignment, direction and the boxes drawn."""

    def __init__(self, draw: ImageDraw.ImageDraw, language: str, fonts: Fonts) -> None:
        self.draw = draw
        self.language = language
        self.fonts = fonts
        self.rtl = language == "ar"
        self.boxes: dict[str, Box] = {}

    def options(self, ltr: bool = False) -> dict[str, Any]:
        if self.fonts.engine is Engine.BASIC:
            return {}
        return {"direction": "rtl" if self.rtl and not ltr else "ltr", "language": self.language}

    def width(self, text: str, font: ImageFont.FreeTypeFont) -> float:
        return float(font.getlength(text, **self.options()))

    def wrap(self, text: str, font: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str] | None:
        """``text`` in at most ``max_lines`` lines of ``width``; None when it cannot be (nothing is cut)."""
        lines: list[str] = []
        current = ""
        for token in tokens(text):
            candidate = f"{current} {token}" if current else token
            if self.width(candidate, font) <= width:
                current = candidate
                continue
            if not current or self.width(token, font) > width:
                return None
            lines.append(current)
            current = token
        if current:
            lines.append(current)
        return lines if len(lines) <= max_lines else None

    def line(self, name: str, text: str, font: ImageFont.FreeTypeFont, y: int, *, fill: tuple[int, ...],
             start: int = MARGIN, end: int = SIZE - MARGIN, at_end: bool = False, ltr: bool = False) -> None:
        """One line from the reading start of ``[start, end]`` (or its end), its top at ``y``.

        ``ltr`` lays out a code (the alert id) left to right whatever the card's language.
        """
        right = self.rtl != at_end
        x, anchor = (end, "ra") if right else (start, "la")
        options = self.options(ltr)
        self.draw.text((x, y), text, font=font, fill=fill, anchor=anchor, **options)
        self._grow(name, self.draw.textbbox((x, y), text, font=font, anchor=anchor, **options))

    def _grow(self, name: str, box: tuple[float, float, float, float]) -> None:
        left, top, right, bottom = (int(v) for v in box)
        if name in self.boxes:
            a, b, c, d = self.boxes[name]
            left, top, right, bottom = min(a, left), min(b, top), max(c, right), max(d, bottom)
        self.boxes[name] = (left, top, right, bottom)


def tokens(text: str) -> list[str]:
    """Words to wrap between; an isolated value (RLI, LRI or FSI … PDI) stays one token, on one line."""
    found: list[str] = []
    depth = 0
    for word in text.split():
        if depth and found:
            found[-1] += " " + word
        else:
            found.append(word)
        depth += sum(word.count(c) for c in INITIATORS) - word.count(PDI)
        depth = max(depth, 0)
    return found


def render_card(content: CardContent, *, fonts: Fonts | None = None, encode: bool = True) -> Card:
    """Draw one card; raise TemplateError when a text does not fit its place at the smallest size.

    ``encode=False`` only proves the card can be drawn (its texts laid out; no marker, no PNG: a few ms).
    """
    from PIL import Image, ImageDraw

    fonts = fonts or Fonts()
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    writer = _Writer(draw, content.language, fonts)
    colour = SEVERITY_COLOURS.get(content.severity, SEVERITY_COLOURS["Unknown"])
    draw.rectangle((0, HEADER[0], SIZE, HEADER[1]), fill=colour)
    _kicker(writer, content)
    _headline(writer, content)
    draw.line((MARGIN, HEADLINE[1] + 24, SIZE - MARGIN, HEADLINE[1] + 24), fill=RULE, width=3)
    _facts(writer, content)
    draw.line((MARGIN, FOOTER_RULE, SIZE - MARGIN, FOOTER_RULE), fill=RULE, width=2)
    writer.line("authority", content.authority, _fit_one(writer, content.authority, (30, 26, 22), BOLD,
                                                         WIDTH * 0.6, "issuing authority"),
                FOOTER_Y, fill=INK)
    writer.line("alert_id", content.alert_id, fonts.get(24), FOOTER_Y + 4, fill=MUTED, at_end=True, ltr=True)
    if not encode:
        return Card(content.language, b"", dict(writer.boxes))
    if content.exercise:
        image = _mark_exercise(image, writer, content.marker)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)
    return Card(content.language, buffer.getvalue(), dict(writer.boxes))


def render_cards(contents: Mapping[str, CardContent], languages: Iterable[str] | None = None, *,
                 encode: bool = True) -> dict[str, Card]:
    """The cards of ``languages`` (default: every language of ``contents``), one thread per card.

    Pillow lets go of the GIL while it rasterises, rotates and compresses, so the
    two languages of an alert render side by side; each thread has its own fonts
    (a FreeType face is not shared between threads), from one read of the font file.
    Blocking: call it through :func:`broadcaster.clock.in_thread` from the event loop.
    """
    from concurrent.futures import ThreadPoolExecutor

    wanted = list(contents) if languages is None else [lang for lang in contents if lang in set(languages)]
    if len(wanted) <= 1 or not encode:
        fonts = Fonts()
        return {lang: render_card(contents[lang], fonts=fonts, encode=encode) for lang in wanted}
    data = font_file().read_bytes()
    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="card") as pool:
        futures = {lang: pool.submit(render_card, contents[lang], fonts=Fonts(data=data)) for lang in wanted}
        return {lang: future.result() for lang, future in futures.items()}


def _overflow(content: CardContent, what: str) -> TemplateError:
    return TemplateError(f"the {content.language} alert card's {what} does not fit the card at its smallest size; "
                         "nothing is ever cut: shorten the text or lower max_length")


def _fit_one(writer: _Writer, text: str, sizes: Iterable[int], weight: int, width: float,
             what: str) -> ImageFont.FreeTypeFont:
    for size in sizes:
        font = writer.fonts.get(size, weight)
        if writer.width(text, font) <= width:
            return font
    raise TemplateError(f"the {writer.language} alert card's {what} ({text!r}) does not fit the card; "
                        "nothing is ever cut")


def _kicker(writer: _Writer, content: CardContent) -> None:
    font = _fit_one(writer, content.kicker, KICKER_SIZES, BOLD, WIDTH, "header")
    top = (HEADER[0] + HEADER[1]) // 2 - int(font.size * 0.75)
    writer.line("kicker", content.kicker, font, top, fill=(255, 255, 255))


def _headline_room(size: int, rtl: bool) -> tuple[int, int]:
    """``(line step, most lines)`` of the headline at ``size``: Arabic needs room above and below for its marks."""
    step = int(size * (1.5 if rtl else 1.25))
    return step, max(1, (HEADLINE[1] - HEADLINE[0]) // step)


def _headline(writer: _Writer, content: CardContent) -> None:
    for size in HEADLINE_SIZES:
        font = writer.fonts.get(size, BOLD)
        step, most = _headline_room(size, writer.rtl)
        lines = writer.wrap(content.headline, font, WIDTH, most)
        if lines is not None:
            for n, text in enumerate(lines):
                writer.line("headline", text, font, HEADLINE[0] + n * step, fill=INK)
            return
    raise _overflow(content, "headline")


def headline_fit(headline: str, language: str, fonts: Fonts) -> tuple[int, int]:
    """``(lines needed, lines there are)`` for ``headline`` at the card's smallest headline size.

    What ``templates check`` proves for channels that carry cards (nothing is drawn, so it is quick).
    """
    from PIL import Image, ImageDraw

    writer = _Writer(ImageDraw.Draw(Image.new("1", (1, 1))), language, fonts)
    size = HEADLINE_SIZES[-1]
    _, most = _headline_room(size, writer.rtl)
    lines = writer.wrap(headline, fonts.get(size, BOLD), WIDTH, 10_000)
    return (len(lines) if lines is not None else most + 1), most


def _facts(writer: _Writer, content: CardContent) -> None:
    """The facts, where first; a list of places too long for the card names its first few and counts the rest."""
    counts = range(len(content.places), 0, -1) if content.places else [0]
    for shown in counts:
        facts = list(content.facts)
        if content.places:
            facts[0] = (facts[0][0], place_list(content.language, content.places, shown))
        for size in FACT_SIZES:
            if _draw_facts(writer, facts, size):
                return
    raise _overflow(content, "facts (where, when)")


def _draw_facts(writer: _Writer, facts: list[tuple[str, str]], size: int) -> bool:
    """Draw ``facts`` at ``size`` if every value takes at most two lines and all fit their box; else False."""
    label_font, value_font = writer.fonts.get(size - 4, BOLD), writer.fonts.get(size)
    step = int(size * (1.55 if writer.rtl else 1.3))
    rows = [(label, writer.wrap(value, value_font, WIDTH - LABEL_COLUMN, 2)) for label, value in facts]
    if any(lines is None for _, lines in rows):
        return False
    if sum(len(lines or ()) for _, lines in rows) * step + (len(rows) - 1) * 12 > FACTS[1] - FACTS[0]:
        return False
    y = FACTS[0]
    # The label column is at the reading start: the right of an Arabic card, the left of an English one.
    label_span = (SIZE - MARGIN - LABEL_COLUMN, SIZE - MARGIN) if writer.rtl else (MARGIN, MARGIN + LABEL_COLUMN)
    value_span = (MARGIN, SIZE - MARGIN - LABEL_COLUMN) if writer.rtl else (MARGIN + LABEL_COLUMN, SIZE - MARGIN)
    for n, (label, lines) in enumerate(rows):
        writer.line(f"fact{n}.label", label, label_font, y + 4, fill=MUTED, start=label_span[0], end=label_span[1])
        for text in lines or ():
            writer.line(f"fact{n}", text, value_font, y, fill=INK, start=value_span[0], end=value_span[1])
            y += step
        y += 12
    return True


def _mark_exercise(image: Any, writer: _Writer, marker: str) -> Any:
    """A striped amber frame, and a translucent amber band across the card with the marker in both languages.

    The band lets the text under it show through: a drill reads the card as the public would.
    """
    from PIL import Image, ImageDraw

    stripe = 24
    strip = Image.new("RGB", (SIZE + 2 * stripe, stripe), MARKER_AMBER)
    strip_draw = ImageDraw.Draw(strip)
    for x in range(0, SIZE + 2 * stripe, 2 * stripe):
        strip_draw.polygon([(x, 0), (x + stripe, 0), (x, stripe), (x - stripe, stripe)], fill=INK)
    image.paste(strip.crop((0, 0, SIZE, stripe)), (0, 0))
    image.paste(strip.crop((stripe, 0, SIZE + stripe, stripe)), (0, SIZE - stripe))
    side = strip.crop((0, 0, SIZE, stripe)).transpose(Image.Transpose.ROTATE_90)
    image.paste(side, (0, 0))
    image.paste(side, (SIZE - stripe, 0))

    band = marker_band(writer.language, marker, writer.fonts.engine)
    image.paste(band, (0, 0), band)
    writer.boxes["marker"] = (0, 0, SIZE, SIZE)
    return image


@functools.lru_cache(maxsize=8)
def marker_band(language: str, marker: str, engine: Engine) -> Any:
    """The translucent diagonal band with ``marker``, as a card-sized RGBA overlay; the same for every card.

    Drawn once per process and language: Pillow rotates without letting go of the
    GIL (some 30 ms), which would stall the event loop on every exercise card.
    The overlay is only ever read (pasted), so threads may share it.
    """
    from PIL import Image, ImageDraw

    band_length, band_height = int(SIZE * 1.42), 132
    band = Image.new("RGBA", (band_length, band_height), (*MARKER_AMBER, 120))
    marker_writer = _Writer(ImageDraw.Draw(band), language, Fonts(engine))
    text = "     ".join([marker] * 3)
    marker_writer.line("marker", text, marker_writer.fonts.get(60, BOLD), (band_height - 88) // 2,
                       fill=(*INK, 190), start=0, end=band_length)
    rotated = band.rotate(45, expand=True, resample=Image.Resampling.BILINEAR)
    left, top = (rotated.width - SIZE) // 2, (rotated.height - SIZE) // 2
    return rotated.crop((left, top, left + SIZE, top + SIZE))

"""Arabic as a person's terminal must receive it to show it right, and as scripts must receive it.

Most terminals neither join Arabic letters nor reorder right-to-left text: given the logical
text an alert is stored and sent as, they show separate letters in reverse order. So when
stdout is a terminal, each paragraph (line) holding right-to-left letters is

1. shaped: every letter replaced by its joined presentation form (``arabic-reshaper``), the
   lam-alef ligatures included;
2. wrapped to the terminal's width on the logical text, before any reordering, as the Unicode
   Bidirectional Algorithm requires: a terminal wrapping a reordered line would show its last
   words on the first row;
3. put in display order, row by row, by the Unicode Bidirectional Algorithm (``python-bidi``),
   with the paragraph's direction taken from its first strong letter (bidi isolates honoured);
   a right-to-left paragraph is aligned to the right edge;
4. cleaned: harakat (fathatan, shadda, ...) are moved after the letter they sit on, since a
   terminal draws a mark on the cell before it, and the bidi controls (marks, embeddings,
   isolates), which have done their work, are dropped.

When stdout is piped or redirected, or with ``--json``, text is printed exactly as stored:
logical order, no presentation forms, every control character kept, so that what a script
reads is what was sent. Only the views call :func:`shown`; nothing stored ever goes through it.
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from arabic_reshaper import ArabicReshaper
    from rich.console import Console

# Hebrew, Arabic, Syriac, Thaana, NKo, ... and the Arabic presentation forms.
_RTL: Final = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_ARABIC_MARK: Final = "[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed]"
# In display order a right-to-left run has each letter's marks before it: put them back after it.
_MARKS_BEFORE_LETTER: Final = re.compile(f"({_ARABIC_MARK}+)([^\n])")
_BIDI_CONTROLS: Final = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A lone surrogate (undecodable bytes in an argument) cannot reach the bidi library: shown as U+FFFD.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def shown(text: str, out: Console, *, wrap: bool = False) -> str:
    """``text`` for ``out``: shaped and in display order on a terminal, unchanged anywhere else.

    ``wrap``: a block of text printed on its own, wrapped to the terminal's width and a
    right-to-left paragraph aligned right (not for table cells, which rich lays out itself).
    """
    if not out.is_terminal:
        return text
    return visual(text, width=out.width if wrap else None)


def visual(text: str, *, width: int | None = None) -> str:
    """``text`` shaped and in display order, paragraph by paragraph, for a terminal that does neither.

    With ``width``, each paragraph holding right-to-left letters is wrapped to that many
    columns first and, if its direction is right-to-left, aligned right.
    """
    if not _RTL.search(text):
        return text
    from arabic_reshaper import ArabicReshaper

    reshaper = ArabicReshaper(configuration={"delete_harakat": False})
    return "\n".join(_visual_paragraph(line, reshaper, width) for line in text.split("\n"))


def _visual_paragraph(paragraph: str, reshaper: ArabicReshaper, width: int | None) -> str:
    if not _RTL.search(paragraph):
        return paragraph
    from bidi import get_base_level, get_display

    paragraph = _SURROGATE.sub("\ufffd", paragraph)
    right_to_left = get_base_level(paragraph) == 1
    shaped = reshaper.reshape(paragraph)
    rows = [shaped] if width is None else textwrap.wrap(shaped, width, break_on_hyphens=False) or [""]
    shown_rows = []
    for row in rows:
        ordered = get_display(row, base_dir="R" if right_to_left else "L")
        ordered = _MARKS_BEFORE_LETTER.sub(lambda match: match.group(2) + match.group(1), ordered)
        ordered = _BIDI_CONTROLS.sub("", ordered)
        if width is not None and right_to_left:
            ordered = " " * max(0, width - _cells(ordered)) + ordered
        shown_rows.append(ordered)
    return "\n".join(shown_rows)


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)

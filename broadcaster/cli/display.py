"""Arabic as a person's terminal must receive it to show it right, and as scripts must receive it.

Most terminals neither join Arabic letters nor reorder right-to-left text: given the logical
text an alert is stored and sent as, they show separate letters in reverse order. So when
stdout is a terminal, each line holding Arabic is

1. shaped: every letter replaced by its joined presentation form (``arabic-reshaper``), the
   lam-alef ligatures included;
2. put in display order by the Unicode Bidirectional Algorithm (``python-bidi``), the
   paragraph's direction taken from its first strong letter, bidi isolates honoured;
3. cleaned: harakat (fathatan, shadda, ...) are moved after the letter they sit on, since a
   terminal draws a mark on the cell before it, and the bidi controls (marks, embeddings,
   isolates), which have done their work, are dropped.

When stdout is piped or redirected, or with ``--json``, text is printed exactly as stored:
logical order, no presentation forms, every control character kept, so that what a script
reads is what was sent. Only the views call :func:`shown`; nothing stored ever goes through it.
"""

from __future__ import annotations

import re
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


def shown(text: str, out: Console) -> str:
    """``text`` for ``out``: in display order and shaped on a terminal, unchanged anywhere else."""
    return visual(text) if out.is_terminal else text


def visual(text: str) -> str:
    """``text`` shaped and in display order, line by line, for a terminal that does neither."""
    if not _RTL.search(text):
        return text
    from arabic_reshaper import ArabicReshaper

    reshaper = ArabicReshaper(configuration={"delete_harakat": False})
    return "\n".join(_visual_line(line, reshaper) for line in text.split("\n"))


def _visual_line(line: str, reshaper: ArabicReshaper) -> str:
    if not _RTL.search(line):
        return line
    from bidi import get_display

    ordered = get_display(reshaper.reshape(_SURROGATE.sub("\ufffd", line)))
    ordered = _MARKS_BEFORE_LETTER.sub(lambda match: match.group(2) + match.group(1), ordered)
    return _BIDI_CONTROLS.sub("", ordered)

"""Which emoji X counts as one: the sequences twitter-text 3.x's emoji parser knows.

twitter-text 3.1 finds emoji with twemoji-parser 11, whose list is Emoji 11.0: each emoji
it finds (a lone pictograph, a skin tone, a flag, a keycap, a ZWJ sequence) weighs 2 in
total, and everything else is counted code point by code point. (Its Java implementation's
generated list reaches Emoji 12.1, and X's servers may know more; the oldest list is the
one taken, so that an emoji is never counted below what any of them counts.) A sequence from a later
Emoji version is therefore not one emoji to X: 🐦‍🔥 (phoenix, Emoji 15.1) is 🐦, a ZWJ and
🔥, weighing 2 + 1 + 2 = 5. This module matches the longest known sequence at each place,
as twemoji-parser's regular expression does, so a newer sequence falls apart into the
known pieces it is made of and is never counted below what X counts.

The list comes from the ``emoji`` package (Unicode's ``emoji-test.txt`` with each
emoji's version), restricted to Emoji 11.0 and earlier. ©, ® and ™ without U+FE0F are left
as text, as twemoji leaves them.
"""

from __future__ import annotations

import functools
from typing import Final

#: The last Emoji version twitter-text 3.1's parser (twemoji-parser 11) knows.
X_EMOJI_VERSION: Final = 11.0

_TEXT_BY_DEFAULT: Final = frozenset("\u00a9\u00ae\u2122")


@functools.cache
def _known() -> tuple[frozenset[str], int, frozenset[str]]:
    """The sequences X knows, the longest one's length, and their first characters: read from the ``emoji``
    package on first use (its data takes tens of ms to import)."""
    import emoji

    known = frozenset(sequence for sequence, data in emoji.EMOJI_DATA.items()
                      if float(data["E"]) <= X_EMOJI_VERSION and sequence not in _TEXT_BY_DEFAULT)
    return known, max(len(sequence) for sequence in known), frozenset(sequence[0] for sequence in known)


def emoji_end(text: str, i: int) -> int:
    """End of the longest emoji X knows that starts at ``text[i]``, or ``i`` if none does."""
    known, longest, starts = _known()
    if text[i] not in starts:
        return i
    for end in range(min(len(text), i + longest), i, -1):
        if text[i:end] in known:
            return end
    return i


def is_known(sequence: str) -> bool:
    """Whether X counts ``sequence`` as one emoji (weight 2)."""
    return sequence in _known()[0]

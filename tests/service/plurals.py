"""Arabic counted nouns as the console must write them, and CLDR's Arabic plural rules written out by hand
(independently of the browser's ``Intl.PluralRules``), for the console browser tests."""

from __future__ import annotations

# Arabic counted nouns, per plural category (zero, one, two, few, many, other), as the console must write them.
CHANNEL = ("لا قنوات", "قناة واحدة", "قناتان", "{n} قنوات", "{n} قناةً", "{n} قناة")
SEGMENT = ("لا مقاطع", "مقطع واحد", "مقطعان", "{n} مقاطع", "{n} مقطعاً", "{n} مقطع")
RECIPIENT = ("لا مستلمين", "مستلم واحد", "مستلمان", "{n} مستلمين", "{n} مستلماً", "{n} مستلم")
STEP = ("لا خطوات", "خطوة واحدة", "خطوتان", "{n} خطوات", "{n} خطوةً", "{n} خطوة")
ALERT = ("لا تنبيهات", "تنبيه واحد", "تنبيهان", "{n} تنبيهات", "{n} تنبيهاً", "{n} تنبيه")
MESSAGE = ("لا رسائل", "رسالة واحدة", "رسالتان", "{n} رسائل", "{n} رسالةً", "{n} رسالة")
UP_TO_CHARS = ("بلا أحرف", "حتى حرف واحد", "حتى حرفين", "حتى {n} أحرف", "حتى {n} حرفاً", "حتى {n} حرف")
NOUNS = {"channel": CHANNEL, "segment": SEGMENT, "recipient": RECIPIENT, "step": STEP, "alert": ALERT,
         "message": MESSAGE, "upToChars": UP_TO_CHARS}


def ar_count(n: int, forms: tuple[str, ...]) -> str:
    """CLDR's Arabic cardinal rules, written out here (not Intl.PluralRules): 0, 1, 2, n%100 3–10, 11–99, else."""
    tail = n % 100
    index = 0 if n == 0 else 1 if n == 1 else 2 if n == 2 else 3 if 3 <= tail <= 10 else 4 if 11 <= tail <= 99 else 5
    return forms[index].replace("{n}", str(n))

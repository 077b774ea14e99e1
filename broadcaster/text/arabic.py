"""Arabic counts and times for reports: the right plural form of a few nouns, Western digits, "مساءً".

Arabic counts a noun in six ways (CLDR's plural rules): one (قناة واحدة), two
(قناتان, the dual), a few, 3 to 10 (3 قنوات, the plural), many, 11 to 99
(11 قناةً, the singular in the accusative), and the rest, 100 and 101, 102 (100 قناة,
the singular). Zero reads "0 قناة" as the rest do. Only the hundreds decide: 103 is
"a few" again, 111 "many".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Final


class PluralForm(StrEnum):
    ZERO = "zero"
    ONE = "one"
    TWO = "two"
    FEW = "few"
    MANY = "many"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Noun:
    singular: str  # قناة
    one: str  # قناة واحدة
    dual: str  # قناتان
    plural: str  # قنوات (3 to 10)
    accusative: str  # قناةً (11 to 99)


NOUNS: Final[dict[str, Noun]] = {
    "channel": Noun("قناة", "قناة واحدة", "قناتان", "قنوات", "قناةً"),
    "message": Noun("رسالة", "رسالة واحدة", "رسالتان", "رسائل", "رسالةً"),
    "recipient": Noun("مستلم", "مستلم واحد", "مستلمان", "مستلمين", "مستلماً"),
    "attempt": Noun("محاولة", "محاولة واحدة", "محاولتان", "محاولات", "محاولةً"),
    "retry": Noun("إعادة", "إعادة واحدة", "إعادتان", "إعادات", "إعادةً"),
    "failure": Noun("إخفاق", "إخفاق واحد", "إخفاقان", "إخفاقات", "إخفاقاً"),
    "language": Noun("لغة", "لغة واحدة", "لغتان", "لغات", "لغةً"),
}


def plural_form(n: int) -> PluralForm:
    """CLDR's Arabic plural category of a whole number."""
    if n < 0:
        raise ValueError(f"a count cannot be negative: {n}")
    if n == 0:
        return PluralForm.ZERO
    if n == 1:
        return PluralForm.ONE
    if n == 2:
        return PluralForm.TWO
    if 3 <= n % 100 <= 10:
        return PluralForm.FEW
    if 11 <= n % 100 <= 99:
        return PluralForm.MANY
    return PluralForm.OTHER


def count(n: int, noun: str) -> str:
    """``n`` of ``noun`` (a key of :data:`NOUNS`) in Arabic with Western digits: 3 قنوات, 11 قناةً."""
    word = NOUNS[noun]
    form = plural_form(n)
    if form is PluralForm.ONE:
        return word.one
    if form is PluralForm.TWO:
        return word.dual
    if form is PluralForm.FEW:
        return f"{n} {word.plural}"
    if form is PluralForm.MANY:
        return f"{n} {word.accusative}"
    return f"{n} {word.singular}"


def time_ar(ts: float, tz: tzinfo) -> str:
    """``30/11/2026 3:56 مساءً``: day/month/year, a 12-hour clock, Western digits."""
    moment = datetime.fromtimestamp(ts, tz)
    hour = moment.hour % 12 or 12
    half = "صباحاً" if moment.hour < 12 else "مساءً"
    return f"{moment.day:02d}/{moment.month:02d}/{moment.year} {hour}:{moment.minute:02d} {half}"


def time_en(ts: float, tz: tzinfo) -> str:
    """``30/11/2026 3:56 PM``, the English twin of :func:`time_ar`."""
    moment = datetime.fromtimestamp(ts, tz)
    hour = moment.hour % 12 or 12
    return f"{moment.day:02d}/{moment.month:02d}/{moment.year} {hour}:{moment.minute:02d} " \
           f"{'AM' if moment.hour < 12 else 'PM'}"

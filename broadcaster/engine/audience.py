"""The SMS audience of a plan counted as the commit will send it: one SMS per phone per alert.

The store keeps one SMS per phone per alert whatever list or channel it came from (the first
list in the plan's order wins, as the commit streams them; a phone listed twice on one list is
one SMS too). The preview rows count each channel's list as it is; :func:`sms_audience` reads
the SMS lists once more, on a worker thread and streaming, to count each phone once and price
its SMS on the channel and in the language it will really go out on.

Memory: one small integer per distinct phone (its E.164 digits) and the list it was first seen
on; nothing else of the lists is held.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcaster.clock import in_thread
from broadcaster.recipients import ListFormat, iter_recipients

if TYPE_CHECKING:
    from broadcaster.engine.outbox import PreviewRow, RecipientList

SMS: str = "sms"


@dataclass(frozen=True, slots=True)
class SmsAudience:
    """A plan's SMS recipients and cost, each phone counted once."""

    listed: int  # phones as the channels' lists give them, summed over channels (the preview rows)
    phones: int  # distinct phones: one SMS each
    on_several: int  # distinct phones on more than one list
    segments: int  # what the SMS cost in segments, each phone once

    @property
    def duplicates(self) -> int:
        """Listed entries the commit will skip (a phone on two lists, or twice on one)."""
        return self.listed - self.phones

    def as_json(self) -> dict[str, int]:
        return {"listed": self.listed, "phones": self.phones, "on_several": self.on_several,
                "duplicates": self.duplicates, "segments": self.segments}


def rows_audience(rows: Sequence[PreviewRow]) -> SmsAudience:
    """The audience as the rows count it: right when no list is read (a follow-up's audience is copied from
    its original's deliveries, one per phone already)."""
    sms = [row for row in rows if row.kind == SMS]
    listed = sum(row.recipients for row in sms)
    return SmsAudience(listed, listed, 0, sum(row.cost_segments for row in sms))


async def sms_audience(rows: Sequence[PreviewRow], lists: Sequence[RecipientList],
                       kinds: dict[str, str]) -> SmsAudience:
    """Count the SMS lists of a plan as its commit will write them (``kinds``: channel id -> kind)."""
    sources = [s for s in lists if kinds.get(s.channel_id) == SMS and s.list_format is ListFormat.PHONE]
    if not sources:
        return rows_audience(rows)
    segments = {(row.channel, row.rendered.language): row.rendered.segments or 1 for row in rows if row.kind == SMS}
    sent, on_several = await in_thread(count_once, sources)
    listed = sum(row.recipients for row in rows if row.kind == SMS)
    return SmsAudience(listed=listed, phones=sum(sent.values()), on_several=on_several,
                       segments=sum(n * segments.get(key, 1) for key, n in sent.items()))


def count_once(sources: Sequence[RecipientList]) -> tuple[Counter[tuple[str, str]], int]:
    """Stream the lists in order: phones per (channel, language) their one SMS goes out on, and how many
    distinct phones are on more than one list. CPU and file work: call it on a worker thread."""
    first: dict[int, int] = {}  # phone (its digits) -> the list it is first on
    several: set[int] = set()
    sent: Counter[tuple[str, str]] = Counter()
    for index, source in enumerate(sources):
        rows = iter_recipients(source.path, known_areas=set(source.known_areas), where=source.where,
                               list_format=source.list_format)
        for r in rows:
            if source.areas and r.area not in source.areas:
                continue
            phone = int(r.address[1:])  # E.164, checked: "+" and digits
            seen = first.get(phone)
            if seen is not None:  # already sent on an earlier list (or earlier on this one): skipped
                if seen != index:
                    several.add(phone)
                continue
            first[phone] = index
            lang = r.language if r.language in source.keys else source.fallback
            sent[(source.channel_id, lang)] += 1
    return sent, len(several)

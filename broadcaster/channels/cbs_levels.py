"""Cell broadcast message identifiers and serial numbers (3GPP TS 23.041 §9.4.1.2.1-2), for ``cell_broadcast``.

**Message identifiers.** Each alert level has its own identifier; phones are set up to sound and show each
(the UAE's, like the EU-Alert and WEA profiles, pair each with a second one for an additional language,
13 above it). The primary (first) language of a channel goes out under the level's identifier, the
additional one under its pair:

=======================================================  ==========  ==========
level (CAP severity / urgency / certainty)               primary     additional
=======================================================  ==========  ==========
presidential                                             4370        4383
Extreme / Immediate / Observed                           4371        4384
Extreme / Immediate / Likely                             4372        4385
Extreme / Expected / Observed                            4373        4386
Extreme / Expected / Likely                              4374        4387
Severe / Immediate / Observed                            4375        4388
Severe / Immediate / Likely                              4376        4389
Severe / Expected / Observed                             4377        4390
Severe / Expected / Likely                               4378        4391
child abduction (AMBER)                                  4379        4392
required monthly test                                    4380        4393
exercise (every exercise fire, whatever its level)       4381        4394
=======================================================  ==========  ==========

No CAP value maps to presidential, AMBER or the monthly test: no template is one, and they are listed so
the table is whole. Any other combination (Moderate or Minor severity, Future or Past urgency, Possible
or Unknown certainty) has no identifier; such a template is refused for a cell broadcast channel before
anything is committed, never sent under a level it is not.

**Serial numbers** (16 bits): ``geo_scope`` (2 bits, the channel's), ``msg_code`` (10 bits) and
``update_nr`` (4 bits). ``msg_code`` is the first 10 bits of the SHA-256 of the thread's first alert id:
stable for every update of one thread, so phones replace a message rather than show a new one. Two
threads share a msg_code with probability 1/1024; that only matters when both are broadcast at once under
the same identifier, which osmo-cbc refuses anyway (it holds one message per identifier, see
``cell_broadcast``). ``update_nr`` is the alert's place in its thread (0 for the first), mod 16.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

__all__ = ["ADDITIONAL_OFFSET", "AMBER", "EXERCISE", "LEVELS", "MONTHLY_TEST", "PRESIDENTIAL", "identifiers",
           "level_identifier", "msg_code", "serial_number", "update_nr"]

PRESIDENTIAL: Final = 4370
AMBER: Final = 4379
MONTHLY_TEST: Final = 4380
EXERCISE: Final = 4381
ADDITIONAL_OFFSET: Final = 13  # 4370 -> 4383 ... 4381 -> 4394
#: (CAP severity, urgency, certainty) -> the primary language's message identifier.
LEVELS: Final[Mapping[tuple[str, str, str], int]] = {
    ("Extreme", "Immediate", "Observed"): 4371,
    ("Extreme", "Immediate", "Likely"): 4372,
    ("Extreme", "Expected", "Observed"): 4373,
    ("Extreme", "Expected", "Likely"): 4374,
    ("Severe", "Immediate", "Observed"): 4375,
    ("Severe", "Immediate", "Likely"): 4376,
    ("Severe", "Expected", "Observed"): 4377,
    ("Severe", "Expected", "Likely"): 4378,
}
GEO_SCOPE_BITS: Final = {"cell_wide_immediate": 0, "plmn_wide": 1, "lac_sac_tac_wide": 2, "cell_wide": 3}


def level_identifier(cap: Mapping[str, str]) -> int | None:
    """The primary identifier of a template's CAP ``severity``, ``urgency`` and ``certainty``; None if none."""
    return LEVELS.get((cap.get("severity", ""), cap.get("urgency", ""), cap.get("certainty", "")))


def identifiers(primary: int, languages: tuple[str, ...]) -> dict[str, int]:
    """Each language's identifier: the first language the primary one, the second its pair (13 above)."""
    return {lang: primary + (ADDITIONAL_OFFSET if i else 0) for i, lang in enumerate(languages)}


def msg_code(root_alert_id: str) -> int:
    """The 10-bit message code of a thread, from its first alert's id (stable across restarts and nodes)."""
    return int.from_bytes(hashlib.sha256(root_alert_id.encode()).digest()[:2], "big") >> 6


def update_nr(number_in_thread: int) -> int:
    """The 4-bit update number of the ``number_in_thread``-th alert of a thread (0 = the first), mod 16."""
    return number_in_thread % 16


def serial_number(geo_scope: str, code: int, update: int) -> int:
    """The 16-bit serial number as the CBC encodes it (``rest_api.c``: GS << 14 | code << 4 | update)."""
    return (GEO_SCOPE_BITS[geo_scope] << 14) | ((code & 0x3FF) << 4) | (update & 0xF)

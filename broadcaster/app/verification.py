"""What the public verification page says about an alert (``GET /verify/{id}``, ``GET /v/{code}``).

Anyone who got a message may check it: the page shows the alert as it was sent on
each channel (the stored texts, never re-rendered), when, its signature status,
and whether it was updated or cancelled. Every rule about what is public is here,
once:

* **Live** alerts are shown. **Exercises** are shown too, marked as an exercise
  on every line: an exercise text reaches only exercise channels, but a
  participant who checks its link must learn that it is a drill, not be told
  "not an official alert" about a message the authority really sent.
* **Dry-runs** never reached anyone: they answer exactly like an id that does not
  exist (None here, a 404 page saying it is not an official alert).
* A follow-up counts only in the alert's own mode: a dry-run update of a live
  alert changes nothing on its public page.

It costs one or two store reads (three for a short code): the alert with its
follow-ups in one query (``Alerts.verification``), then its messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from broadcaster import cap_signing
from broadcaster.app.context import App
from broadcaster.clock import in_thread
from broadcaster.states import Mode, MsgType
from broadcaster.store.records import AlertRecord
from broadcaster.templates.verify_line import read_code
from broadcaster.text.lengths import telegram_text

PUBLIC_MODES: Final = (Mode.LIVE, Mode.EXERCISE)
MAX_TEXT: Final = 4_000  # characters of one text shown; a longer one says how much is left out
MAX_TEXTS: Final = 40  # distinct texts shown (one per channel kind and language, usually a handful)
_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LANG_ORDER: Final = {"ar": 0, "ar+en": 1, "en": 2}


class SignatureStatus(StrEnum):
    """What the page says about the alert's CAP signature."""

    VALID = "valid"  # signed, and the signature verifies against the authority's certificate
    INVALID = "invalid"  # signed, and the signature does not verify: the page warns
    NOT_CHECKED = "not_checked"  # a signature is stored, and no certificate is configured to check it against
    UNSIGNED = "unsigned"  # no signature (alerts from before signing, or signing not configured)


async def signature_status(app: App, alert: AlertRecord) -> SignatureStatus:
    """What the stored document's signature says, checked against the certificate ``channels.toml`` names.

    The stored bytes are the published ones: no stored document, or one without an
    XML-DSig ``Signature``, is unsigned; a signed one is verified (on a worker thread)
    against the configured ``cap_signing_cert``, never the certificate inside it.
    Without a configured certificate the page says it could not check.
    """
    if alert.cap is None or cap_signing.DSIG_NS not in alert.cap:  # a cheap look before the thread
        return SignatureStatus.UNSIGNED
    found = await in_thread(cap_signing.signature_status, alert.cap.encode("utf-8"), app.config)
    if isinstance(found, cap_signing.Verified):
        return SignatureStatus.VALID
    if found.reason == cap_signing.ProblemReason.UNSIGNED:
        return SignatureStatus.UNSIGNED
    if found.reason == cap_signing.ProblemReason.NO_CERTIFICATE:
        return SignatureStatus.NOT_CHECKED
    return SignatureStatus.INVALID


@dataclass(frozen=True, slots=True)
class ShownText:
    """One text as the public got it, with the channel kinds that sent it."""

    language: str  # "ar", "en", or "ar+en" for a message carrying both
    kinds: tuple[str, ...]
    text: str
    left_out: int = 0  # characters past MAX_TEXT not shown (said on the page, never cut silently)


@dataclass(frozen=True, slots=True)
class Verification:
    alert: AlertRecord
    texts: tuple[ShownText, ...]
    updates: tuple[AlertRecord, ...]  # later updates of this alert, oldest first
    cancelled_by: AlertRecord | None
    signature: SignatureStatus
    more_texts: int = 0  # distinct texts past MAX_TEXTS, not shown

    @property
    def exercise(self) -> bool:
        return self.alert.mode == Mode.EXERCISE


async def by_code(app: App, code: str) -> str | None:
    """The alert id a short code names (read forgivingly: lower case, hyphens, O for 0), or None."""
    short = read_code(code)
    return await app.store.alerts.by_short(short) if short is not None else None


async def verification(app: App, alert_id: str) -> Verification | None:
    """The public page's content for ``alert_id``; None when there is no public alert with that id."""
    if not _ID.fullmatch(alert_id):
        return None
    # A cancel references every unexpired alert of its thread in its CAP <references> ("sender,sender/ID,sent").
    pattern = f"%/{alert_id},%" if re.fullmatch(r"[A-Za-z0-9-]+", alert_id) else None
    rows = await app.store.alerts.verification(alert_id, cancel_ref=pattern)
    alert = next((a for a in rows if a.id == alert_id), None)
    if alert is None or alert.mode not in PUBLIC_MODES:
        return None
    later = [a for a in rows if a.id != alert_id and a.mode == alert.mode and a.sent_at >= alert.sent_at]
    updates = tuple(a for a in later if a.msg_type == MsgType.UPDATE)
    cancelled_by = next((a for a in later if a.msg_type == MsgType.CANCEL), None)
    texts, more = await _texts(app, alert_id)
    return Verification(alert=alert, texts=texts, updates=updates, cancelled_by=cancelled_by,
                        signature=await signature_status(app, alert), more_texts=more)


async def _texts(app: App, alert_id: str) -> tuple[tuple[ShownText, ...], int]:
    """The alert's stored texts, each distinct text once with every kind that sent it, Arabic first."""
    kinds = {c.id: c.kind for c in app.config.channels}
    grouped: dict[tuple[str, str], list[str]] = {}
    for message in await app.store.alerts.messages(alert_id):
        kind = kinds.get(message.channel_id, message.channel_id)
        # Telegram's stored text is its HTML: the public saw it parsed.
        text = telegram_text(message.text) if kind == "telegram" else message.text
        names = grouped.setdefault((message.language, text), [])
        if kind not in names:
            names.append(kind)
    ordered = sorted(grouped.items(), key=lambda item: _LANG_ORDER.get(item[0][0], 3))
    shown = tuple(ShownText(lang, tuple(names), text[:MAX_TEXT], max(0, len(text) - MAX_TEXT))
                  for (lang, text), names in ordered[:MAX_TEXTS])
    return shown, max(0, len(ordered) - MAX_TEXTS)

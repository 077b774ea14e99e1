"""The public verification page as HTML: Arabic first (``dir="rtl" lang="ar"``), then English.

Server-rendered, with the service's security headers: no script at all, one
``<style>`` block (the policy allows inline styles), nothing fetched from
elsewhere. Every stored or requested string (texts, ids, names) is data and goes
through :func:`html.escape`; ids and links sit in ``<bdi>`` inside Arabic. The
only links are to this site's own verification pages of the alert's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape
from typing import Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from broadcaster.app.verification import ShownText, SignatureStatus, Verification
from broadcaster.states import MsgType
from broadcaster.templates.variables import format_moment

CSS: Final = """
body{font-family:system-ui,"Noto Sans Arabic","Segoe UI",Tahoma,sans-serif;margin:0 auto;max-width:46em;
padding:1em;color:#111;line-height:1.55}h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1em 0 .3em}
section{margin-bottom:2em;border-bottom:2px solid #ddd;padding-bottom:1em}dl{margin:.3em 0}dt{font-weight:bold}
dd{margin:0 0 .4em}.banner{font-weight:bold;padding:.5em .8em;margin:.5em 0;border-radius:4px}
.ok{background:#e7f4ea;border:1px solid #2e7d32}.bad{background:#b00020;color:#fff}
.exercise{background:repeating-linear-gradient(45deg,#f5b700,#f5b700 12px,#ffe08a 12px,#ffe08a 24px)}
.warn{background:#fff3cd;border:1px solid #b58900}.text{white-space:pre-wrap;border:1px solid #ccc;
background:#fafafa;padding:.5em;margin:.2em 0 .8em;unicode-bidi:plaintext}.muted{color:#555}
"""
KIND_NAMES: Final[Mapping[str, Mapping[str, str]]] = {
    "ar": {"sms": "رسالة نصية", "x": "إكس", "telegram": "تيليجرام", "whatsapp": "واتساب",
           "email": "البريد الإلكتروني", "facebook": "فيسبوك", "instagram": "إنستغرام", "webhook": "الشركاء",
           "cell_broadcast": "البث الخلوي"},
    "en": {"sms": "SMS", "x": "X", "telegram": "Telegram", "whatsapp": "WhatsApp", "email": "Email",
           "facebook": "Facebook", "instagram": "Instagram", "webhook": "Partners", "cell_broadcast": "Cell broadcast"},
}
WORDS: Final[Mapping[str, Mapping[str, str]]] = {
    "ar": {
        "title": "التحقق من تنبيه", "official": "تنبيه رسمي صادر عن {authority}",
        "exercise": "تمرين: هذا ليس تنبيهاً حقيقياً. أُرسل إلى المشاركين في التمرين فقط.",
        "sent": "وقت الإرسال", "expires": "ساري حتى", "expired": "انتهت صلاحيته", "id": "رقم التنبيه",
        "code": "رمز التحقق", "signature": "التوقيع الرقمي", "texts": "النص كما أُرسل على كل قناة",
        "cancelled": "أُلغي هذا التنبيه", "updated": "صدر تحديث لهذا التنبيه", "see": "انظر",
        "is_update": "هذا تحديث للتنبيه", "is_cancel": "هذا إلغاء للتنبيه",
        "left_out": "عدد أحرف هذا النص التي لم تُعرض هنا: {n}",
        "more": "عدد النصوص الأخرى التي لم تُعرض هنا: {n}", "both": "العربية والإنجليزية",
        "not_found_title": "ليس رقم تنبيه رسمي",
        "not_found": "هذا ليس رقم تنبيه رسمي صادر عن {authority}. إن وصلتك رسالة بهذا الرابط فهي ليست منه: "
                     "لا تتبع تعليماتها، وتابع القنوات الرسمية.",
        SignatureStatus.VALID: "موقّع، والتوقيع صحيح",
        SignatureStatus.INVALID: "التوقيع غير صحيح: لا تعتمد على هذه الصفحة وتابع القنوات الرسمية",
        SignatureStatus.NOT_CHECKED: "موقّع، ولم يُتحقق من التوقيع على هذا الخادم",
        SignatureStatus.UNSIGNED: "غير موقّع",
    },
    "en": {
        "title": "Alert verification", "official": "An official alert from {authority}",
        "exercise": "EXERCISE: this is not a real alert. It was sent to exercise participants only.",
        "sent": "Sent", "expires": "Valid until", "expired": "expired", "id": "Alert id",
        "code": "Verification code", "signature": "Digital signature", "texts": "The text as sent on each channel",
        "cancelled": "This alert was cancelled", "updated": "This alert was updated", "see": "see",
        "is_update": "This updates alert", "is_cancel": "This cancels alert",
        "left_out": "{n} more characters of this text are not shown here", "more": "{n} more texts are not shown here",
        "both": "Arabic and English", "not_found_title": "Not an official alert id",
        "not_found": "This is NOT an official alert id of {authority}. If you received a message with this link, it "
                     "did not come from {authority}: do not follow its instructions, and check the official channels.",
        SignatureStatus.VALID: "signed, and the signature is valid",
        SignatureStatus.INVALID: "the signature is NOT valid: do not rely on this page; check the official channels",
        SignatureStatus.NOT_CHECKED: "signed; the signature is not checked on this server",
        SignatureStatus.UNSIGNED: "not signed",
    },
}
LANGUAGE_NAMES: Final = {"ar": {"ar": "العربية", "en": "الإنجليزية"}, "en": {"ar": "Arabic", "en": "English"}}
DIRECTION: Final = {"ar": "rtl", "en": "ltr"}


def page(v: Verification, *, authority: Mapping[str, str], tz: ZoneInfo, now: float) -> str:
    """The page of one public alert."""
    sections = "".join(_section(v, lang, authority[lang], tz, now) for lang in ("ar", "en"))
    texts = _texts(v)
    title = f"{WORDS['ar']['title']} · {WORDS['en']['title']}"
    return _document(title, sections + texts)


def not_found(requested: str, *, authority: Mapping[str, str]) -> str:
    """The 404 page: in both languages, this is not an official alert id (a spoofed link is recognisable)."""
    shown = escape(requested[:40])
    sections = "".join(
        f'<section lang="{lang}" dir="{DIRECTION[lang]}"><h1>{escape(WORDS[lang]["not_found_title"])}</h1>'
        f'<p class="banner bad">{escape(WORDS[lang]["not_found"].format(authority=authority[lang]))}</p>'
        f'<p class="muted"><bdi>{shown}</bdi></p></section>'
        for lang in ("ar", "en"))
    return _document(f"{WORDS['ar']['not_found_title']} · {WORDS['en']['not_found_title']}", sections)


def _document(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="ar" dir="rtl"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def _section(v: Verification, lang: str, authority: str, tz: ZoneInfo, now: float) -> str:
    w, alert = WORDS[lang], v.alert
    headline = escape(alert.forms.get(lang, {}).get("headline", ""))
    parts = [f'<section lang="{lang}" dir="{DIRECTION[lang]}">',
             f"<p class=\"muted\">{escape(w['official'].format(authority=authority))}</p>",
             f"<h1>{headline}</h1>"]
    if v.exercise:
        parts.append(f'<p class="banner exercise">{escape(w["exercise"])}</p>')
    if v.cancelled_by is not None:
        parts.append(f'<p class="banner bad">{escape(w["cancelled"])} ({escape(w["see"])} '
                     f"{_link(v.cancelled_by.id)})</p>")
    if v.updates:
        links = "، ".join(_link(u.id) for u in v.updates) if lang == "ar" else ", ".join(_link(u.id) for u in v.updates)
        parts.append(f'<p class="banner warn">{escape(w["updated"])} ({escape(w["see"])} {links})</p>')
    if alert.references and alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL):
        key = "is_update" if alert.msg_type == MsgType.UPDATE else "is_cancel"
        parts.append(f"<p>{escape(w[key])} {_link(alert.references)}</p>")
    expired = f" ({escape(w['expired'])})" if alert.expires_at <= now else ""
    signature = escape(w[v.signature])
    sig_class = "bad" if v.signature == SignatureStatus.INVALID else "muted"
    parts.append(
        "<dl>"
        f"<dt>{escape(w['sent'])}</dt><dd>{escape(_when(alert.sent_at, lang, tz))}</dd>"
        f"<dt>{escape(w['expires'])}</dt><dd>{escape(_when(alert.expires_at, lang, tz))}{expired}</dd>"
        f"<dt>{escape(w['id'])}</dt><dd><bdi>{escape(alert.id)}</bdi></dd>"
        + (f"<dt>{escape(w['code'])}</dt><dd><bdi>{escape(alert.short)}</bdi></dd>" if alert.short else "")
        + f"<dt>{escape(w['signature'])}</dt><dd class=\"{sig_class}\">{signature}</dd></dl></section>")
    return "".join(parts)


def _texts(v: Verification) -> str:
    """Every distinct text once, each in its own language's direction, named by the kinds that sent it."""
    heading = f"{WORDS['ar']['texts']} · {WORDS['en']['texts']}"
    items = [f'<section lang="ar" dir="rtl"><h2>{escape(heading)}</h2>']
    for shown in v.texts:
        items.append(_text(shown))
    if v.more_texts:
        items.append(f"<p class=\"muted\">{escape(WORDS['ar']['more'].format(n=v.more_texts))} · "
                     f"<span lang=\"en\" dir=\"ltr\">{escape(WORDS['en']['more'].format(n=v.more_texts))}</span></p>")
    items.append("</section>")
    return "".join(items)


def _text(shown: ShownText) -> str:
    single = shown.language in DIRECTION
    lang_attr = f' lang="{shown.language}" dir="{DIRECTION[shown.language]}"' if single else ' dir="auto"'
    label_ar = (LANGUAGE_NAMES["ar"][shown.language] if single else WORDS["ar"]["both"])
    label_en = (LANGUAGE_NAMES["en"][shown.language] if single else WORDS["en"]["both"])
    kinds_ar = "، ".join(KIND_NAMES["ar"].get(k, k) for k in shown.kinds)
    kinds_en = ", ".join(KIND_NAMES["en"].get(k, k) for k in shown.kinds)
    out = (f"<h3>{escape(kinds_ar)} ({escape(label_ar)}) · <span lang=\"en\" dir=\"ltr\">{escape(kinds_en)} "
           f"({escape(label_en)})</span></h3><p class=\"text\"{lang_attr}>{escape(shown.text)}</p>")
    if shown.left_out:
        out += (f"<p class=\"muted\">{escape(WORDS['ar']['left_out'].format(n=shown.left_out))} · "
                f"<span lang=\"en\" dir=\"ltr\">{escape(WORDS['en']['left_out'].format(n=shown.left_out))}</span></p>")
    return out


def _link(alert_id: str) -> str:
    return f'<a href="/verify/{escape(quote(alert_id, safe=""), quote=True)}"><bdi>{escape(alert_id)}</bdi></a>'


def _when(ts: float, lang: str, tz: ZoneInfo) -> str:
    return format_moment(datetime.fromtimestamp(ts, tz), "datetime", lang, tz)

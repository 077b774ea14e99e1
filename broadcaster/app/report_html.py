"""The after-action report as one self-contained HTML file: Arabic first, right to left, then English.

It can be attached to an incident record and opened anywhere: inline CSS, an inline
SVG chart, no script and nothing fetched; the only URLs are the thread's own public
CAP links. Every stored string (ids, channel names, texts, error details) is data
and goes through :func:`html.escape`; Latin ids inside Arabic sit in ``<bdi>``.
"""

from __future__ import annotations

from datetime import tzinfo
from html import escape
from typing import Final

from broadcaster.app.report import Report
from broadcaster.app.report_svg import timeline_svg
from broadcaster.states import state_word
from broadcaster.text.arabic import count, time_ar, time_en

CSS: Final = """
body{font-family:system-ui,"Noto Sans Arabic","Segoe UI",Tahoma,sans-serif;margin:1.5em;color:#111;line-height:1.5}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.2em 0 .4em;border-bottom:1px solid #ccc}
section{margin-bottom:2.5em}table{border-collapse:collapse;margin:.3em 0}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:start;vertical-align:top}th{background:#eee}
td.n{text-align:end;font-variant-numeric:tabular-nums}.mode{font-weight:bold;padding:.1em .5em;border-radius:3px}
.mode-live{background:#b00020;color:#fff}.mode-exercise{background:#f5b700}.mode-dry-run{background:#0bb}
.text{white-space:pre-wrap;border:1px solid #ccc;background:#fcfcfc;padding:.5em;margin:.2em 0 .8em;
unicode-bidi:isolate}.muted{color:#555}svg.timeline{max-width:100%;height:auto}
@media print{body{margin:0}section{page-break-after:always}}
"""

WORDS: Final[dict[str, dict[str, str]]] = {
    "ar": {
        "title": "تقرير ما بعد التنبيه", "alert": "التنبيه", "template": "القالب", "mode": "الوضع",
        "type": "النوع", "sent_at": "وقت الإرسال", "generated": "أُعدّ التقرير", "summary": "الملخص",
        "reach": "الوصول حسب القناة واللغة", "channel": "القناة", "language": "اللغة", "deliveries": "الرسائل",
        "recipients": "المستلمون", "states": "الحالات النهائية", "delivered": "سُلّمت (إيصالات)",
        "undelivered": "لم تُسلَّم (إيصالات)", "no_receipts": "لا إيصالات", "latency": "زمن القبول بعد الالتزام",
        "accepted": "مقبولة", "max": "الأقصى", "failures": "الإخفاقات حسب السبب", "reason": "السبب",
        "attempts": "المحاولات", "final": "نهائية", "channels": "القنوات", "example": "مثال",
        "none": "لا شيء", "retries": "إعادات المحاولة", "thread": "سلسلة التنبيه (التحديثات والإلغاء)",
        "first_accepted": "أول قبول", "time_to_correct": "زمن التصحيح", "messages": "الرسالة كما وصلت كل قناة",
        "timeline": "الرسائل المقبولة مع الوقت (تراكمي)", "x_label": "ثوانٍ بعد الالتزام",
        "y_label": "مقبولة", "no_accepted": "لم تُقبل أي رسالة", "this": "هذا التنبيه", "seconds": "ث",
        "totals": "المجموع", "cap": "وثيقة CAP",
    },
    "en": {
        "title": "After-action report", "alert": "Alert", "template": "Template", "mode": "Mode", "type": "Type",
        "sent_at": "Sent at", "generated": "Report generated", "summary": "Summary",
        "reach": "Reach per channel and language", "channel": "Channel", "language": "Language",
        "deliveries": "Deliveries", "recipients": "Recipients", "states": "Final states",
        "delivered": "Delivered (receipts)", "undelivered": "Undelivered (receipts)",
        "no_receipts": "no receipts", "latency": "Commit-to-accepted latency", "accepted": "Accepted",
        "max": "max", "failures": "Failures by reason", "reason": "Reason", "attempts": "Attempts",
        "final": "Final", "channels": "Channels", "example": "Example", "none": "none", "retries": "Retries",
        "thread": "The thread (updates, cancel)", "first_accepted": "First accepted",
        "time_to_correct": "Time to correct", "messages": "The message as each channel got it",
        "timeline": "Accepted deliveries over time (cumulative)", "x_label": "seconds after commit",
        "y_label": "accepted", "no_accepted": "no delivery was accepted", "this": "this alert", "seconds": "s",
        "totals": "Total", "cap": "CAP document",
    },
}
TERMS_AR: Final = {
    "sent": "أُرسلت", "recorded": "سُجّلت", "failed": "فشلت", "expired": "انتهت صلاحيتها", "withdrawn": "سُحبت",
    "pending": "معلّقة",
    "sending": "قيد الإرسال", "unknown": "غير معروفة", "live": "حي للجمهور", "exercise": "تمرين",
    "dry-run": "محاكاة — لم يُرسل شيء", "Alert": "تنبيه", "Update": "تحديث", "Cancel": "إلغاء",
    "rate_limited": "تجاوز حد المعدّل", "auth": "المصادقة", "bad_request": "طلب مرفوض", "recipient_gone":
    "المستلم غير متاح", "server": "خطأ لدى المزوّد", "network": "الشبكة", "timeout": "انتهاء المهلة", "other": "أخرى",
}


def report_html(report: Report, tz: tzinfo) -> str:
    """The whole document: ``<html lang="ar" dir="rtl">``, the Arabic section, then the English one."""
    a = report.alert
    head = (f'<!DOCTYPE html>\n<html lang="ar" dir="rtl"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{WORDS['ar']['title']} · {WORDS['en']['title']} · {e(a.id)}</title>"
            f"<style>{CSS}</style></head><body>")
    return head + _section(report, "ar", tz) + _section(report, "en", tz) + "</body></html>\n"


def e(value: object) -> str:
    """A stored value as HTML text: escaped, never markup."""
    return escape(str(value), quote=True)


def _section(report: Report, lang: str, tz: tzinfo) -> str:
    w = WORDS[lang]
    ar = lang == "ar"
    a = report.alert
    when = time_ar if ar else time_en

    def term(value: str) -> str:
        return e(TERMS_AR.get(value, value)) if ar else e(value)

    def secs(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f} {w['seconds']}"

    def iso_id(value: str) -> str:
        return f"<bdi>{e(value)}</bdi>"

    out = [f'<section lang="{lang}" dir="{"rtl" if ar else "ltr"}" id="{lang}">',
           f"<h1>{w['title']}: {iso_id(a.id)}</h1>",
           f'<p><span class="mode mode-{e(a.mode)}">{term(str(a.mode))}</span> · {term(str(a.msg_type))} · '
           f"{w['template']} {iso_id(a.template)} · {w['sent_at']} <bdi>{when(a.sent_at, tz)}</bdi></p>"]
    channels = sorted({r.channel for r in report.reach})
    deliveries = sum(r.deliveries for r in report.reach)
    retries = sum(report.retries.values())
    failed = sum(f.final for f in report.failures)
    if ar:
        out.append(f"<p>{count(len(channels), 'channel')}، {count(deliveries, 'message')}، "
                   f"{count(retries, 'retry')}، {count(failed, 'failure')}.</p>")
    else:
        out.append(f"<p>{_en(len(channels), 'channel')}, {_en(deliveries, 'delivery', 'deliveries')}, "
                   f"{_en(retries, 'retry', 'retries')}, {_en(failed, 'failed delivery', 'failed deliveries')}.</p>")
    out.append(f'<p class="muted">{w["generated"]} <bdi>{when(report.generated_at, tz)}</bdi></p>')

    out.append(f"<h2>{w['reach']}</h2><table><tr><th>{w['channel']}</th><th>{w['language']}</th>"
               f"<th>{w['deliveries']}</th><th>{w['recipients']}</th><th>{w['states']}</th>"
               f"<th>{w['delivered']}</th><th>{w['undelivered']}</th></tr>")
    for r in report.reach:
        states = "، ".join if ar else ", ".join
        shown = states(f"{term(state_word(s, a.mode))} {n}" for s, n in r.states.items())
        receipts = [str(v) if v is not None else f'<span class="muted">{w["no_receipts"]}</span>'
                    for v in (r.delivered, r.undelivered)]
        out.append(f"<tr><td>{iso_id(r.channel)}</td><td>{iso_id(r.language)}</td><td class=n>{r.deliveries}</td>"
                   f"<td class=n>{r.recipients}</td><td>{shown}</td><td class=n>{receipts[0]}</td>"
                   f"<td class=n>{receipts[1]}</td></tr>")
    out.append("</table>")

    out.append(f"<h2>{w['latency']}</h2>")
    if report.latency:
        out.append(f"<table><tr><th>{w['channel']}</th><th>{w['accepted']}</th><th>p50</th><th>p90</th>"
                   f"<th>p99</th><th>{w['max']}</th></tr>")
        for x in report.latency:
            out.append(f"<tr><td>{iso_id(x.channel)}</td><td class=n>{x.accepted}</td>"
                       + "".join(f"<td class=n>{secs(v)}</td>" for v in (x.p50_s, x.p90_s, x.p99_s, x.max_s))
                       + "</tr>")
        out.append("</table>")
    else:
        out.append(f"<p>{w['no_accepted']}</p>")
    out.append(timeline_svg(report.timeline, title=w["timeline"], x_label=w["x_label"], y_label=w["y_label"],
                            empty=w["no_accepted"]))

    out.append(f"<h2>{w['failures']}</h2>")
    if report.failures:
        out.append(f"<table><tr><th>{w['reason']}</th><th>{w['attempts']}</th><th>{w['final']}</th>"
                   f"<th>{w['channels']}</th><th>{w['example']}</th></tr>")
        for f in report.failures:
            out.append(f"<tr><td>{term(f.reason)}</td><td class=n>{f.attempts}</td><td class=n>{f.final}</td>"
                       f"<td>{', '.join(iso_id(c) for c in f.channels)}</td>"
                       f'<td><bdi dir="ltr">{e(f.example)}</bdi></td></tr>')
        out.append("</table>")
    else:
        out.append(f"<p>{w['none']}</p>")
    out.append(f"<h2>{w['retries']}</h2>")
    if report.retries:
        per = "، ".join if ar else ", ".join
        total = count(retries, "retry") if ar else _en(retries, "retry", "retries")
        out.append(f"<p>{total}: {per(f'{iso_id(c)} {n}' for c, n in report.retries.items())}</p>")
    else:
        out.append(f"<p>{w['none']}</p>")

    out.append(f"<h2>{w['thread']}</h2><table><tr><th>{w['type']}</th><th>{w['alert']}</th>"
               f"<th>{w['sent_at']}</th><th>{w['first_accepted']}</th><th>{w['time_to_correct']}</th></tr>")
    for t in report.thread:
        ident = iso_id(t.id) + (f' <span class="muted">({w["this"]})</span>' if t.id == a.id else "")
        if t.link:
            ident += f' · <a href="{e(t.link)}">{w["cap"]}</a>'
        first = f"<bdi>{when(t.first_accepted, tz)}</bdi>" if t.first_accepted is not None else "—"
        out.append(f"<tr><td>{term(t.msg_type)}</td><td>{ident}</td><td><bdi>{when(t.sent_at, tz)}</bdi></td>"
                   f"<td>{first}</td><td class=n>{secs(t.time_to_correct_s)}</td></tr>")
    out.append("</table>")

    out.append(f"<h2>{w['messages']}</h2>")
    # Arabic texts and the bilingual ones (Arabic first) in the Arabic section, the rest in the English one.
    shown_messages = [m for m in report.messages if m.language.startswith("ar") == ar]
    for m in shown_messages:
        direction = {"ar": ' lang="ar" dir="rtl"', "en": ' lang="en" dir="ltr"'}.get(m.language, ' dir="auto"')
        out.append(f"<h3>{iso_id(m.channel_id)} · {iso_id(m.language)}</h3>"
                   f'<div class="text"{direction}>{e(m.text)}</div>')
    if not shown_messages:
        out.append(f"<p>{w['none']}</p>")
    out.append("</section>")
    return "".join(out)


def _en(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"

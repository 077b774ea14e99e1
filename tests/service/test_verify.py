"""The public verification page: GET /verify/{id} and GET /v/{code}, no token, Arabic first, escaped."""

from __future__ import annotations

import html
import re
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from broadcaster.app.verification import ShownText, SignatureStatus, Verification, signature_status
from broadcaster.cap_signing import load_signer, sign
from broadcaster.engine import outbox
from broadcaster.errors import Conflict
from broadcaster.service.headers import CONTENT_SECURITY_POLICY
from broadcaster.service.verify_page import not_found, page
from broadcaster.states import Mode, MsgType
from broadcaster.store.records import AlertRecord
from broadcaster.templates.variables import example_inputs, format_moment
from broadcaster.templates.verify_line import short_code
from tests.cap.keys import write_pair
from tests.service.support import PUBLIC_URL, Api, ManualClock

DUBAI = ZoneInfo("Asia/Dubai")
CODE_IN_TEXT = re.compile(re.escape(PUBLIC_URL) + r"/v/([0-9A-Z]{8})")
NOT_OFFICIAL_EN = "This is NOT an official alert id"
NOT_OFFICIAL_AR = "هذا ليس رقم تنبيه رسمي"


async def fetch(api: Api, path: str) -> tuple[int, str, dict[str, str]]:
    async with api.client.get(path) as response:  # no token: the page is public
        return response.status, await response.text(), dict(response.headers)


async def fire(api: Api, mode: str = "live", template: str = "road_closure") -> str:
    status, body = await api.fire("officer", template=template, mode=mode)
    assert status == 202, body
    await api.settle()
    return str(body["alert_id"])


async def follow(api: Api, alert_id: str, action: str, mode: str = "live") -> str:
    if isinstance(api.clock, ManualClock):
        api.clock.advance(1)
    body = {"mode": mode, **({"variables": {}} if action == "update" else {})}
    if mode == "live":
        body["confirm"] = "road_closure" if action == "update" else "cancel"
    status, answer = await api.post(f"/api/alerts/{alert_id}/{action}", body)
    assert status == 202, answer
    await api.settle()
    return str(answer["alert_id"])


async def test_a_live_alert_shows_each_channel_text_when_and_its_signature_arabic_first(api: Api) -> None:
    alert_id = await fire(api)
    status, body, headers = await fetch(api, f"/verify/{alert_id}")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html") and headers["Cache-Control"] == "public, max-age=60"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY and "<script" not in body
    assert body.index('<section lang="ar" dir="rtl">') < body.index('<section lang="en" dir="ltr">')
    alert = await api.app.store.alerts.get(alert_id)
    messages = await api.app.store.alerts.messages(alert_id)
    # Every stored text is on the page (escaped), Telegram's as Telegram showed it (no tags).
    for m in messages:
        if m.channel_id.startswith("telegram"):
            assert "&lt;b&gt;" not in body and html.escape(m.text.replace("<b>", "").replace("</b>", "")) in body
        else:
            assert html.escape(m.text) in body, m.key
    # When: as the alerts themselves say it, Western digits and صباحاً/مساءً.
    sent = datetime.fromtimestamp(alert.sent_at, DUBAI)
    assert html.escape(format_moment(sent, "datetime", "ar", DUBAI)) in body
    assert html.escape(format_moment(sent, "datetime", "en", DUBAI)) in body
    assert re.search(r"\d (صباحاً|مساءً)", body.replace("\u00a0", " "))
    assert "غير موقّع" in body and "not signed" in body
    assert "cancelled" not in body and "updated" not in body


async def test_the_short_link_in_every_text_opens_the_same_page(api: Api) -> None:
    alert_id = await fire(api)
    texts = [m.text for m in await api.app.store.alerts.messages(alert_id)]
    codes = {code for text in texts for code in CODE_IN_TEXT.findall(text)}
    assert codes == {short_code(alert_id)}
    (code,) = codes
    assert await api.app.store.alerts.by_short(code) == alert_id
    _, by_id, _ = await fetch(api, f"/verify/{alert_id}")
    for typed in (code, code.lower(), f"{code[:4]}-{code[4:]}".lower(), code.replace("0", "O")):
        status, body, headers = await fetch(api, f"/v/{typed}")
        assert status == 200, typed
        assert body == by_id and headers["Cache-Control"] == "public, max-age=60"
    assert code in by_id


async def test_an_updated_alert_links_to_its_update_and_the_update_back(clocked: Api) -> None:
    api = clocked
    original = await fire(api)
    update = await follow(api, original, "update")
    dry = await follow(api, original, "update", mode="dry-run")  # never public: it changes nothing here
    _, body, _ = await fetch(api, f"/verify/{original}")
    assert "This alert was updated" in body and "صدر تحديث لهذا التنبيه" in body
    assert f'href="/verify/{update}"' in body and dry not in body
    assert "was cancelled" not in body
    status, body, _ = await fetch(api, f"/verify/{update}")
    assert status == 200 and "This updates alert" in body and f'href="/verify/{original}"' in body
    assert "تحديث: " in body  # its texts say what it is, first


async def test_a_cancelled_alert_says_so_in_both_languages_even_when_its_update_was_cancelled(clocked: Api) -> None:
    api = clocked
    original = await fire(api)
    update = await follow(api, original, "update")
    cancel = await follow(api, update, "cancel")
    for alert_id in (original, update):
        _, body, _ = await fetch(api, f"/verify/{alert_id}")
        assert "This alert was cancelled" in body and "أُلغي هذا التنبيه" in body, alert_id
        assert f'href="/verify/{cancel}"' in body
    status, body, _ = await fetch(api, f"/verify/{cancel}")
    assert status == 200 and "This cancels alert" in body and "was cancelled" not in body


async def test_an_exercise_is_shown_marked_as_an_exercise_in_both_languages(api: Api) -> None:
    alert_id = await fire(api, mode="exercise", template="flood_warning")
    status, body, _ = await fetch(api, f"/verify/{alert_id}")
    assert status == 200
    assert "EXERCISE: this is not a real alert" in body and "تمرين: هذا ليس تنبيهاً حقيقياً" in body
    assert "[EXERCISE]" in body and "[تمرين]" in body  # and its texts, as sent, carry the marker
    (code,) = {c for m in await api.app.store.alerts.messages(alert_id) for c in CODE_IN_TEXT.findall(m.text)}
    status, _, _ = await fetch(api, f"/v/{code}")
    assert status == 200


async def test_a_dry_run_answers_like_an_unknown_id_not_official(api: Api) -> None:
    dry = await fire(api, mode="dry-run")
    (code,) = {c for m in await api.app.store.alerts.messages(dry) for c in CODE_IN_TEXT.findall(m.text)}
    for path in (f"/verify/{dry}", f"/v/{code}", "/verify/20261130-120000-abcdef", "/v/ZZZZZZZZ", "/v/not-a-code!"):
        status, body, headers = await fetch(api, path)
        assert status == 404, path
        assert NOT_OFFICIAL_EN in body and NOT_OFFICIAL_AR in body, path
        assert body.index('lang="ar"') < body.index('lang="en"')
        assert headers["Cache-Control"] == "public, max-age=15"
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


async def test_a_hostile_path_is_escaped_on_the_not_found_page(api: Api) -> None:
    status, body, _ = await fetch(api, "/verify/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert status == 404 and "<script" not in body and "&lt;script&gt;" in body


def hostile_alert(**changes: object) -> AlertRecord:
    bad = '<script>alert("x")</script>&"\''
    fields: dict[str, object] = dict(
        id="a1", template="road_closure", template_hash="0" * 64, mode=Mode.LIVE, msg_type=MsgType.UPDATE,
        references='"><img src=x onerror=alert(1)>', sent_at=1_790_000_000.0, expires_at=1_790_090_000.0, areas=(),
        channels=(), inputs={}, forms={"ar": {"headline": bad}, "en": {"headline": bad}}, short="<b>X</b>")
    fields.update(changes)
    return AlertRecord(**fields)  # type: ignore[arg-type]


def test_every_stored_value_is_escaped_on_the_page() -> None:
    alert = hostile_alert()
    shown = ShownText("ar", ("sms", "<i>kind</i>"), '</p><script>steal()</script>', left_out=3)
    v = Verification(alert=alert, texts=(shown,), updates=(hostile_alert(id="u<1>"),),
                     cancelled_by=hostile_alert(id="c\"1"), signature=SignatureStatus.UNSIGNED)
    out = page(v, authority={"ar": "<b>هيئة</b>", "en": "<b>Authority</b>"}, tz=DUBAI, now=0)
    for raw in ("<script", "<img", "<b>", "<i>", 'id="c"1', "onerror=alert(1)>"):
        assert raw not in out, raw
    assert "&lt;script&gt;" in out and "&lt;/p&gt;" in out and "&lt;b&gt;Authority&lt;/b&gt;" in out
    assert 'href="/verify/u%3C1%3E"' in out and 'href="/verify/c%221"' in out
    assert "3 more characters of this text are not shown here" in out  # bounded, and said so
    assert "<script" not in not_found("<script>x</script>", authority={"ar": "<i>", "en": "<i>"})


async def test_the_signature_status_checks_the_stored_document_against_the_configured_certificate(
        tmp_path: Path) -> None:
    key, cert = write_pair(tmp_path / "keys", "ec")
    document = b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</identifier></alert>"
    signed = sign(document, load_signer(key, cert)).decode()
    _, other_cert = write_pair(tmp_path / "other", "rsa")
    app = SimpleNamespace(config=SimpleNamespace(cap_signing_cert=cert))

    async def status(cap: str | None, checking: object = app) -> SignatureStatus:
        return await signature_status(checking, hostile_alert(cap=cap))  # type: ignore[arg-type]

    assert await status(signed) == SignatureStatus.VALID
    assert await status(signed.replace("<identifier>x<", "<identifier>y<")) == SignatureStatus.INVALID
    assert await status(signed, SimpleNamespace(config=SimpleNamespace(cap_signing_cert=other_cert))) \
        == SignatureStatus.INVALID
    assert await status(signed, SimpleNamespace(config=SimpleNamespace(cap_signing_cert=None))) \
        == SignatureStatus.NOT_CHECKED
    assert await status(document.decode()) == SignatureStatus.UNSIGNED
    assert await status(None) == SignatureStatus.UNSIGNED


async def test_the_verify_line_is_the_one_link_an_officer_typed_link_is_still_refused(api: Api) -> None:
    body = {"template": "road_closure", "use_examples": True, "mode": "dry-run"}
    status, preview = await api.post("/api/preview", body, "viewer")
    assert status == 200, preview
    texts = [m["text"] for m in preview["messages"] if m["channel"].startswith(("sms", "x-"))]
    assert texts and all(CODE_IN_TEXT.search(t) for t in texts)
    hostile = {**body, "variables": {"detour": {"ar": "شارع الخيل", "en": "see https://evil.example/pay"}}}
    status, refused = await api.post("/api/preview", hostile, "viewer")
    assert status == 400 and refused["field"] == "variables.detour", refused


async def test_a_code_another_alert_holds_refuses_the_commit_and_nothing_is_stored(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, now = api.app, time.time()
    monkeypatch.setattr(outbox, "short_code", lambda alert_id: "ABCD2345")  # two ids whose sha256 share 40 bits

    async def planned() -> outbox.Plan:
        inputs = example_inputs(app.catalogue.get("road_closure"), now, app.config.timezone)
        return await outbox.plan_alert(app.config, app.catalogue, "road_closure", inputs, mode=Mode.DRY_RUN, now=now,
                                       selection="partner-hook")

    first, second = await planned(), await planned()
    await outbox.commit(app.store, first)
    with pytest.raises(Conflict, match=r"verification code ABCD2345 .* nothing was committed or sent"):
        await outbox.commit(app.store, second)
    assert await app.store.alerts.find(second.alert.id) is None
    assert await app.store.alerts.by_short("ABCD2345") == first.alert.id

"""The preview's SMS total counts each phone once, as the commit sends it: one SMS per phone per alert (issue 15)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.app.context import open_app
from broadcaster.app.fire import run_plan
from broadcaster.cli import main
from broadcaster.engine.audience import count_once
from broadcaster.engine.outbox import Plan, RecipientList, count_phones, plan_alert
from broadcaster.engine.retry import RetryPolicy
from broadcaster.states import Mode
from broadcaster.templates.variables import example_inputs
from tests.engine.providers import AREAS, SECRETS, Providers, uae_phone, write_recipients
from tests.support import Reader

FAST = RetryPolicy(base_s=0.02, cap_s=0.1, reconcile_after_s=0.2)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def volunteers(p: Providers) -> list[dict[str, Any]]:
    """A second SMS list: phones 4 to 9 (4, 5 and 6 are residents too), and phone 9 written twice."""
    path = p.tmp_path / "volunteers.csv"
    write_recipients(path, 6, start=4)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{uae_phone(9)},en,{AREAS[0]}\n")
    return [{"id": "sms-volunteers", "kind": "sms", "api_base": p.twilio.base_url,
             "account_sid_env": "TWILIO_ACCOUNT_SID", "auth_token_env": "TWILIO_AUTH_TOKEN",
             "from": "+15005550006", "recipients": "volunteers.csv", "rate_per_second": 200}]


def plan_and_send(p: Providers) -> tuple[Plan, str]:
    async def go() -> tuple[Plan, str]:
        async with open_app(str(p.config), str(p.db)) as app:
            now = time.time()
            plan = await plan_alert(app.config, app.catalogue, "road_closure",
                                    example_inputs(app.catalogue.get("road_closure"), now, app.config.timezone),
                                    mode=Mode.LIVE, now=now)
            await count_phones(plan)  # as a preview or the typed confirmation does before it goes out
            await run_plan(app, plan, policy=FAST)
            return plan, plan.alert.id

    return asyncio.run(go())


def test_a_phone_on_two_sms_lists_is_counted_once_as_the_commit_sends_it(tmp_path: Path) -> None:
    with Providers(tmp_path, extra_channels=volunteers) as p:
        plan, alert_id = plan_and_send(p)
        sent = [d for d in Reader(p.db).deliveries(alert_id) if d.channel_id.startswith("sms-")]
    sms = plan.sms_total
    rows = [row for row in plan.rows if row.kind == "sms"]
    assert sms.listed == sum(row.recipients for row in rows) == 6 + 7  # each channel's rows, as they are
    assert sms.phones == len(sent) == len({d.recipient for d in sent}) == 9
    assert sms.on_several == 3 and sms.duplicates == 4  # 4, 5, 6 on both lists; 9 twice on one
    segments = {(row.channel, row.rendered.language): row.rendered.segments for row in rows}
    assert sms.segments == sum(segments[(d.channel_id, d.language)] or 1 for d in sent)
    assert sms.segments < sum(row.cost_segments for row in rows)


def test_the_cli_preview_counts_each_phone_once_and_says_how_many_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, extra_channels=volunteers) as p:
        assert main(["--config", str(p.config), "--db", str(p.db), "preview", "road_closure",
                     "--use-examples"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "SMS: 9 recipient(s)" in out
    assert "one SMS per phone: 13 listed on the channels, 4 repeat(s) counted once; 3 phone(s) on more than one " \
           "list" in out


def test_the_json_preview_carries_the_totals_each_phone_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import orjson

    with Providers(tmp_path, extra_channels=volunteers) as p:
        assert main(["--config", str(p.config), "--db", str(p.db), "preview", "road_closure", "--use-examples",
                     "--json"]) == 0
    sms = orjson.loads(capsys.readouterr().out)["sms"]
    assert (sms["listed"], sms["phones"], sms["on_several"], sms["duplicates"]) == (13, 9, 3, 4)


PHONES = st.integers(min_value=1, max_value=12)
LISTS = st.lists(st.lists(st.tuples(PHONES, st.sampled_from(["ar", "en"])), max_size=15), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(LISTS)
def test_count_once_matches_one_sms_per_phone(lists: list[list[tuple[int, str]]]) -> None:
    """Against a plain model of the store's rule: the first list (in order) a phone is on sends its one SMS."""
    with tempfile.TemporaryDirectory() as folder:
        sources = []
        for index, entries in enumerate(lists):
            path = Path(folder) / f"list{index}.csv"
            path.write_text("phone,language,area\n" + "".join(f"{uae_phone(n)},{lang},{AREAS[0]}\n"
                                                               for n, lang in entries), encoding="utf-8")
            sources.append(RecipientList(f"sms-{index}", path, f"list {index}", frozenset(), frozenset(AREAS),
                                         {"ar": f"sms-{index}/ar", "en": f"sms-{index}/en"}, "ar"))
        sent, several = count_once(sources)
    expected: Counter[tuple[str, str]] = Counter()
    first: dict[int, int] = {}
    for index, entries in enumerate(lists):
        for n, lang in entries:
            if n not in first:
                first[n] = index
                expected[(f"sms-{index}", lang)] += 1
    on_lists = Counter(n for entries in lists for n in {n for n, _ in entries})
    assert sent == expected
    assert several == sum(1 for count in on_lists.values() if count > 1)


def test_a_fire_nobody_reviews_does_not_read_its_lists_again(tmp_path: Path) -> None:
    """The second read is for what a person reads; a `--yes` fire goes out without waiting for it."""
    with Providers(tmp_path, extra_channels=volunteers) as p:
        async def go() -> Plan:
            async with open_app(str(p.config), str(p.db)) as app:
                now = time.time()
                return await plan_alert(app.config, app.catalogue, "road_closure",
                                        example_inputs(app.catalogue.get("road_closure"), now, app.config.timezone),
                                        mode=Mode.LIVE, now=now)

        plan = asyncio.run(go())
    assert plan.sms is None  # not counted: the rows' own total stands until someone asks
    assert plan.sms_total.listed == plan.sms_total.phones == 13

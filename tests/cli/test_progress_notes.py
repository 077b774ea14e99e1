"""The note beside each channel's progress bar counts deliveries where they stand now, in plain words."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.cli import main
from broadcaster.cli.progress_notes import ChannelNote
from broadcaster.states import DeliveryState, Mode, Outcome
from broadcaster.store.records import AttemptResult
from tests.cli.test_display import ANSI, Terminal
from tests.engine.providers import Providers
from tests.fakes.twilio import twilio_error

STATE_OF = {Outcome.SENT: DeliveryState.SENT, Outcome.RETRY: DeliveryState.PENDING,
            Outcome.FAILED: DeliveryState.FAILED, Outcome.UNKNOWN: DeliveryState.UNKNOWN,
            Outcome.EXPIRED: DeliveryState.EXPIRED}


def attempt(delivery: int, outcome: Outcome, *, http_status: int | None = None, detail: str | None = None,
            next_at: float | None = 5.0) -> AttemptResult:
    return AttemptResult(delivery_id=delivery, attempt_id=0, outcome=outcome, state=STATE_OF[outcome],
                         started_at=0.0, finished_at=0.0, http_status=http_status, detail=detail,
                         next_attempt_at=next_at if outcome in (Outcome.RETRY, Outcome.UNKNOWN) else None)


def test_a_delivery_retried_three_times_is_one_delivery_retrying() -> None:
    note = ChannelNote(2, Mode.LIVE)
    for _ in range(3):
        note.record(attempt(1, Outcome.RETRY, http_status=503, detail="server_error: 503"))
    assert note.text() == "1 to send · 1 retrying"  # not "0/2 pending 3"
    note.record(attempt(1, Outcome.SENT))
    assert note.text() == "1 to send"
    note.record(attempt(2, Outcome.SENT))
    assert note.text() == "all sent"
    assert note.finished == 2


def test_a_429_says_it_waits_for_the_rate_limit() -> None:
    note = ChannelNote(3, Mode.LIVE)
    note.record(attempt(1, Outcome.RETRY, http_status=429, detail="rate_limited: HTTP 429"))
    note.record(attempt(2, Outcome.RETRY, detail="rate_limited: Too Many Requests"))
    note.record(attempt(3, Outcome.RETRY, http_status=500, detail="server_error: HTTP 500"))
    assert note.text() == "1 retrying · 2 waiting for rate limit"


def test_unknown_outcomes_say_who_settles_them() -> None:
    note = ChannelNote(2, Mode.LIVE)
    note.record(attempt(1, Outcome.UNKNOWN, next_at=30.0))
    note.record(attempt(2, Outcome.UNKNOWN, next_at=None))
    assert note.text() == ("1 outcome unknown, checking with the provider · "
                           "1 outcome unknown, held for an operator")


def test_the_final_note_names_every_final_state() -> None:
    note = ChannelNote(3, Mode.LIVE)
    note.record(attempt(1, Outcome.SENT))
    note.record(attempt(2, Outcome.FAILED, http_status=400))
    note.record(attempt(3, Outcome.EXPIRED))
    assert note.text() == "1 sent · 1 failed · 1 expired"
    assert note.finished == 3


def test_a_dry_run_records_and_never_says_sent() -> None:
    note = ChannelNote(2, Mode.DRY_RUN)
    note.record(attempt(1, Outcome.SENT))
    assert note.text() == "1 to send"
    note.record(attempt(2, Outcome.SENT))
    assert note.text() == "all recorded"
    note.record(attempt(2, Outcome.FAILED))
    assert note.text() == "1 recorded · 1 failed"


def test_before_any_attempt_everything_is_to_send() -> None:
    assert ChannelNote(4, Mode.LIVE).text() == "4 to send"


@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(list(STATE_OF))), max_size=40))
def test_the_note_counts_each_delivery_once(events: list[tuple[int, Outcome]]) -> None:
    note = ChannelNote(6, Mode.LIVE)
    for delivery, outcome in events:
        note.record(attempt(delivery, outcome))
    last = {d: STATE_OF[o] for d, o in events}
    assert sum(note.counts.values()) == len(last)
    assert note.finished == sum(1 for s in last.values() if s in (DeliveryState.SENT, DeliveryState.FAILED,
                                                                     DeliveryState.EXPIRED))
    words = note.text()
    retrying = sum(1 for s in last.values() if s == DeliveryState.PENDING)
    assert (f"{retrying} retrying" in words) == bool(retrying)


# --- on an officer's terminal ------------------------------------------------------------------


def fire_on_terminal(monkeypatch: pytest.MonkeyPatch, p: Providers, *args: str) -> tuple[int, str]:
    screen = Terminal(io.BytesIO(), encoding="utf-8", line_buffering=True)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", screen)
        code = main(p.cli("fire", "road_closure", "--use-examples", *args, as_user="officer"))
        screen.flush()
    buffer = screen.buffer
    assert isinstance(buffer, io.BytesIO)
    return code, ANSI.sub("", buffer.getvalue().decode("utf-8"))


def test_a_dry_run_on_a_terminal_ends_all_recorded(monkeypatch: pytest.MonkeyPatch, p: Providers) -> None:
    code, out = fire_on_terminal(monkeypatch, p, "--dry-run")
    assert code == 0
    bar = re.compile(r"^(\S+) +━+ \d+/\d+(.*)$")
    last = {m[1]: m[2].strip() for line in re.sub(r"\x1b\[\?25[lh]", "", out).splitlines()
            if (m := bar.match(line))}  # each channel's note as the screen last shows it
    assert len(last) >= 4 and set(last.values()) == {"all recorded"}, last


def test_a_live_fire_with_a_refused_sms_ends_naming_it(monkeypatch: pytest.MonkeyPatch, p: Providers) -> None:
    p.twilio.script(twilio_error(400, 21211, "The 'To' number is not a valid phone number."))
    code, out = fire_on_terminal(monkeypatch, p, "--live", "--yes")
    assert code == 1
    sms = [line.rstrip() for line in out.splitlines() if re.match(r"sms-residents +━+ ", line)]
    assert sms and sms[-1].endswith("3/3 2 sent · 1 failed"), sms


def test_a_channel_whose_phones_were_all_duplicates_ends_with_nothing_to_send(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    def second_sms(p: Providers) -> list[dict[str, Any]]:  # the same phones as sms-residents: one SMS per phone
        return [{"id": "sms-second", "kind": "sms", "api_base": p.twilio.base_url,
                 "account_sid_env": "TWILIO_ACCOUNT_SID", "auth_token_env": "TWILIO_AUTH_TOKEN",
                 "from": "+15005550006", "recipients": "residents.csv", "rate_per_second": 200}]

    with Providers(tmp_path, recipients=3, extra_channels=second_sms) as p:
        code, out = fire_on_terminal(monkeypatch, p, "--live", "--yes")
    assert code == 0
    assert "3 duplicate phone number(s) skipped" in out
    bar = re.compile(r"^(\S+) +━+ (\d+/\d+)(.*)$")
    last = {m[1]: (m[2], m[3].strip()) for line in re.sub(r"\x1b\[\?25[lh]", "", out).splitlines()
            if (m := bar.match(line))}
    assert sorted(last.values()) == sorted([("3/3", "all sent"), ("0/0", "nothing to send"), ("2/2", "all sent"),
                                            ("1/1", "all sent"), ("1/1", "all sent")]), last

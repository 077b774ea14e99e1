"""Every form of a secret is masked: as typed, case-folded, percent-encoded, split, and inside basic auth."""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote

from hypothesis import assume, given
from hypothesis import strategies as st

from broadcaster.secret import Redactor, Secret, SecretScrubber, scrub

# Credentials as providers issue them: letters, digits and a little punctuation, never the mask's '*'.
VALUES = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/+="),
                 min_size=8, max_size=48)
AROUND = st.text(st.sampled_from("abcXYZ019 :/?&=.-\"'{}[]\n"), max_size=40)


def forms(value: str) -> list[str]:
    return [value, value.lower(), value.upper(), quote(value, safe=""), quote(value, safe="").lower(),
            quote(quote(value, safe=""), safe="")]


@given(VALUES, AROUND, AROUND, st.integers(0, 5))
def test_every_form_of_a_secret_is_masked_wherever_it_stands(value: str, before: str, after: str, which: int) -> None:
    form = forms(value)[which]
    clean = Redactor([Secret(value, "ENV")]).clean(f"{before}{form}{after}")
    assert value.lower() not in clean.lower()
    assert form not in clean


@given(VALUES, VALUES, AROUND, AROUND, st.booleans())
def test_basic_auth_of_any_two_secrets_is_masked(user: str, password: str, before: str, after: str,
                                                 urlsafe: bool) -> None:
    assume(user != password)
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    header = encode(f"{user}:{password}".encode()).decode()
    clean = Redactor([Secret(user, "SID"), Secret(password, "TOKEN")]).clean(f"{before}Basic {header}{after}")
    assert header not in clean and header.rstrip("=") not in clean


@given(VALUES, st.text(st.sampled_from("abcdefgh012:"), max_size=12), AROUND)
def test_base64_that_hides_a_secret_at_any_alignment_is_masked(value: str, user: str, after: str) -> None:
    """The user part need not be a known secret: any base64 run that decodes to the secret is masked."""
    hidden = base64.b64encode(f"{user}:{value}".encode()).decode()
    clean = Redactor([Secret(value, "TOKEN")]).clean(f"Authorization: Basic {hidden}{after}")
    assert hidden.rstrip("=") not in clean


@given(VALUES, AROUND)
def test_text_without_the_secret_is_left_as_it_was(value: str, text: str) -> None:
    assume(value.lower() not in text.lower())
    assert Redactor([Secret(value, "ENV")]).clean(text) == text


@given(VALUES, AROUND, AROUND)
def test_cleaning_twice_changes_nothing_more(value: str, before: str, after: str) -> None:
    redactor = Redactor([Secret(value, "ENV")])
    once = redactor.clean(f"{before}{value}{after}")
    assert redactor.clean(once) == once


def test_a_telegram_tokens_secret_half_is_masked_on_its_own_and_the_bot_id_is_not() -> None:
    token = Secret("123456:AAH-telegram-SECRET-part", "TELEGRAM_TOKEN")
    assert scrub("bot 123456 said aah-telegram-secret-part", [token]) == "bot 123456 said ********"


def test_a_lowercased_telegram_url_from_ptb_is_masked() -> None:
    token = Secret("123456:TELEGRAM-SECRET-5555", "TELEGRAM_TOKEN")
    echoed = "No such method /bot123456:telegram-secret-5555/sendmessage"  # PTB's capitalize() lower-cases it
    assert scrub(echoed, [token]) == "No such method /bot********/sendmessage"
    assert scrub("/bot123456%3atelegram-secret-5555/x", [token]) == "/bot********/x"


def test_no_secret_and_an_empty_text_are_left_alone() -> None:
    assert Redactor([]).clean("anything at all") == "anything at all"
    assert not Redactor([Secret("", "EMPTY")])
    assert Redactor([Secret("abcdefgh12", "ENV")]).clean_optional(None) is None


def test_a_redactor_never_shows_what_it_masks() -> None:
    redactor = Redactor([Secret("do-not-show-this-1", "ENV")])
    assert "do-not-show" not in repr(redactor) and "do-not-show" not in str(redactor)


def test_the_log_scrubber_masks_basic_auth_and_keeps_a_secret_two_channels_share() -> None:
    sid, token = Secret("AC" + "1" * 32, "SID"), Secret("tok-SECRET-abcdef", "TOKEN")
    scrubber = SecretScrubber(["tests.secret.sdk"])
    logger = logging.getLogger("tests.secret.sdk")
    try:
        scrubber.add(sid)
        scrubber.add(token)
        scrubber.add(token)  # a second channel with the same token
        scrubber.discard(token)  # the first one closes
        header = base64.b64encode(f"{sid.reveal()}:{token.reveal()}".encode()).decode()
        record = logger.makeRecord(logger.name, logging.DEBUG, __file__, 1, "auth %s then %s",
                                   (f"Basic {header}", token.reveal().upper()), None)
        scrubber.filter(record)
        assert record.getMessage() == "auth Basic ******** then ********"
    finally:
        logger.removeFilter(scrubber)

"""Recipient lists (phones; emails for the email kind): streamed row by row, each address checked, errors name lines."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.errors import ConfigError
from broadcaster.recipients import (
    ListFormat,
    Recipient,
    canonical_email,
    check_phone,
    email_problem,
    index_list,
    iter_recipients,
)

ROOT = Path(__file__).resolve().parents[1]
AREAS = {"DXB", "DXB-DEIRA", "DXB-MARINA", "DXB-HATTA"}


def write(tmp_path: Path, *lines: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def error_of(path: Path, *, known_areas: set[str] | None = None, where: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        list(iter_recipients(path, known_areas=known_areas, where=where))
    return str(caught.value)


def test_valid_rows_stream_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,ar,DXB-DEIRA", "", " +971521234567 , en , DXB ",
                 "+447911123456,en,DXB-MARINA")
    rows = iter_recipients(path, known_areas=AREAS)
    assert inspect.isgenerator(rows)
    assert list(rows) == [
        Recipient("+971501234567", "ar", "DXB-DEIRA", 2),
        Recipient("+971521234567", "en", "DXB", 4),
        Recipient("+447911123456", "en", "DXB-MARINA", 5),
    ]


def test_the_shipped_recipient_lists_are_valid() -> None:
    for name in ("residents.csv", "exercise.csv", "whatsapp.csv", "whatsapp_exercise.csv"):
        rows = list(iter_recipients(ROOT / "recipients" / name))
        assert rows
        assert all(r.address.startswith("+971") and r.language in ("ar", "en") for r in rows)
    for name in ("email.csv", "email_exercise.csv"):
        rows = list(iter_recipients(ROOT / "recipients" / name, list_format=ListFormat.EMAIL))
        assert rows and all("@" in r.address and r.language in ("ar", "en") for r in rows)


def test_header_is_case_and_space_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path, "Phone, Language ,AREA", "+971501234567,ar,DXB")
    assert [r.address for r in iter_recipients(path)] == ["+971501234567"]


def test_a_spreadsheet_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfphone,language,area\r\n+971501234567,en,DXB\r\n")
    assert [r.address for r in iter_recipients(path)] == ["+971501234567"]


@pytest.mark.parametrize(
    "phone",
    [
        "0501234567",  # national format
        "971501234567",  # no plus
        "00971501234567",  # international prefix
        "+971 50 123 4567",  # spaces
        "+971-50-1234567",
        "+97150123456",  # too short
        "+9715012345678",  # too long
        "+971571234567",  # no such mobile range
        "+٩٧١٥٠١٢٣٤٥٦٧",  # Arabic-Indic digits: valid to read, not E.164
        "+",
        "",
        "tel:+971501234567",
    ],
)
def test_an_invalid_number_names_the_file_and_line(tmp_path: Path, phone: str) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,ar,DXB", f"{phone},en,DXB")
    message = error_of(path)
    assert message.startswith(f"{path}: line 3: ")
    assert "not a valid E.164 phone number" in message


def test_the_error_carries_the_channel_context(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,language,area", "12345,ar,DXB")
    message = error_of(path, where="channels.toml: channel 'sms-residents': key 'recipients'")
    assert message.startswith(f"channels.toml: channel 'sms-residents': key 'recipients': {path}: line 2:")


@pytest.mark.parametrize(
    "header", ["phone,lang,area", "phone,language", "language,phone,area", "", "+971501234567,ar,DXB"]
)
def test_a_bad_header_is_refused(tmp_path: Path, header: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(header + ("\n+971501234567,ar,DXB\n" if header else ""), encoding="utf-8")
    message = error_of(path)
    assert message == f"{path}: line 1: header must be phone,language,area"


def test_a_row_with_the_wrong_number_of_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,ar")
    assert error_of(path) == f"{path}: line 2: expected 3 fields, found 2"


def test_a_bad_language(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,fr,DXB")
    assert "line 2: language 'fr' must be ar or en" in error_of(path)


def test_an_unknown_area(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,ar,DXB", "+971521234567,en,DXB-ATLANTIS")
    assert "line 3: area 'DXB-ATLANTIS' is not in the gazetteer" in error_of(path, known_areas=AREAS)
    # Without a gazetteer to check against, any area passes.
    assert len(list(iter_recipients(path))) == 2


def test_a_missing_file(tmp_path: Path) -> None:
    assert "recipient list not found" in error_of(tmp_path / "nobody.csv")


def test_a_folder_is_not_a_recipient_list(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    message = error_of(tmp_path / "lists", where="channels.toml: channel 'sms' key 'recipients'")
    assert message == f"channels.toml: channel 'sms' key 'recipients': {tmp_path / 'lists'}: recipient list is a " \
                      "folder, not a file"
    assert "is a folder" in index_error(tmp_path / "lists")


def test_a_named_pipe_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: it must never be opened."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert "not a regular file" in error_of(fifo)
    assert "not a regular file" in index_error(fifo)


def test_an_unreadable_list_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,ar,DXB")
    # Tests may run as root, who reads everything: the refusal is simulated where the check asks.
    monkeypatch.setattr(os, "access", lambda *_args, **_kwargs: False)
    assert error_of(path) == f"{path}: recipient list cannot be read: permission denied"
    assert "permission denied" in index_error(path)


def test_a_latin1_list_names_the_line_and_byte_and_asks_for_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("phone,language,area\n+971501234567,en,DXB\n+971521234567,en,Caf\u00e9\n".encode("latin-1"))
    message = error_of(path)
    assert message == (f"{path}: line 3, column 21: byte 0xE9 is not UTF-8; the recipient list must be UTF-8 text: "
                       "save it as UTF-8 (in a spreadsheet: CSV UTF-8)")
    assert "line 3, column 21: byte 0xE9" in index_error(path)


def test_a_bad_byte_deep_in_a_big_list_is_found(tmp_path: Path) -> None:
    """The list is decoded a megabyte at a time; the line is still the one with the bad byte."""
    path = big_list(tmp_path, 60_000)
    with path.open("ab") as handle:
        handle.write(b"+971509999999,en,D\xffXB\n")
    assert "line 60002, column 19: byte 0xFF is not UTF-8" in error_of(path)


def test_a_field_over_the_csv_size_limit_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,en,DXB", "+971521234567,en," + "D" * 200_000)
    assert "line 3: not a usable CSV row: field larger than field limit" in error_of(path)


def index_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        index_list(path)
    return str(caught.value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_recipients_or_a_config_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    """Whatever a file holds: checked rows, or one ConfigError naming the file; never another exception."""
    path = tmp_path_factory.mktemp("bytes") / "any.csv"
    path.write_bytes(b"phone,language,area\n" + data)
    try:
        rows = list(iter_recipients(path))
    except ConfigError as exc:
        assert str(path) in str(exc)
        return
    assert all(check_phone(r.phone) and r.language in ("ar", "en") for r in rows)


def big_list(tmp_path: Path, rows: int, *, last: str | None = None) -> Path:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("phone,language,area\n")
        for i in range(rows):
            handle.write(f"+97150{i:07d},{'ar' if i % 2 else 'en'},DXB\n")
        if last is not None:
            handle.write(last + "\n")
    return path


def test_a_20k_row_list_streams(tmp_path: Path) -> None:
    path = big_list(tmp_path, 20_000, last="+971000,ar,DXB")
    rows = iter_recipients(path, known_areas=AREAS)
    first = next(rows)
    assert first == Recipient("+971500000000", "en", "DXB", 2)
    # Every good row comes out before the bad last line is even read: nothing is loaded up front.
    seen = 1
    with pytest.raises(ConfigError, match="line 20002"):
        for row in rows:
            seen += 1
            assert row.line == seen + 1
    assert seen == 20_000


MOBILE_PREFIXES = ["50", "52", "54", "55", "56", "58"]
uae_mobiles = st.builds(lambda prefix, rest: f"+971{prefix}{rest}", st.sampled_from(MOBILE_PREFIXES),
                        st.from_regex(r"[0-9]{7}", fullmatch=True))


@settings(max_examples=150, deadline=None)
@given(uae_mobiles)
def test_check_phone_accepts_valid_uae_mobiles(phone: str) -> None:
    assert check_phone(phone)


@settings(max_examples=150, deadline=None)
@given(phone=uae_mobiles, cut=st.integers(1, 11))
def test_check_phone_refuses_mangled_uae_mobiles(phone: str, cut: int) -> None:
    assert not check_phone(phone[1:])  # no plus
    assert not check_phone(phone[:-1])  # a digit short
    assert not check_phone(phone + "7")  # a digit too many
    assert not check_phone(phone[:cut] + " " + phone[cut:])  # formatted
    assert not check_phone("+971571" + phone[-6:])  # unallocated range


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=20))
def test_check_phone_only_accepts_canonical_e164(text: str) -> None:
    if check_phone(text):
        assert text.startswith("+") and text[1:].isascii() and text[1:].isdigit()
        assert 8 <= len(text) <= 16


def test_a_list_edited_after_it_passed_is_checked_in_full_again(tmp_path: Path) -> None:
    """The second read of an unchanged list skips phonenumbers; any edit brings it back."""
    import os

    path = tmp_path / "list.csv"
    path.write_text("phone,language,area\n+971501234567,ar,DXB\n", encoding="utf-8")
    assert [r.address for r in iter_recipients(path)] == ["+971501234567"]
    # Same shape, but not a valid UAE mobile number: only phonenumbers can tell.
    path.write_text("phone,language,area\n+971001234567,ar,DXB\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(ConfigError, match="line 2"):
        list(iter_recipients(path))


EMAIL = ListFormat.EMAIL


def emails(path: Path, **kwargs: object) -> list[Recipient]:
    return list(iter_recipients(path, list_format=EMAIL, **kwargs))  # type: ignore[arg-type]


def test_an_email_list_streams_checked_addresses_domain_in_lower_case(tmp_path: Path) -> None:
    path = write(tmp_path, "email,language,area", "Fatima.AlMansoori@Dubai.Example.AE,ar,DXB-DEIRA", "",
                 " ops+alerts@partner.example , en , DXB ")
    assert emails(path, known_areas=AREAS) == [
        Recipient("Fatima.AlMansoori@dubai.example.ae", "ar", "DXB-DEIRA", 2),
        Recipient("ops+alerts@partner.example", "en", "DXB", 4),
    ]
    # The second read of the unchanged file takes the fast path and yields the very same addresses.
    assert emails(path, known_areas=AREAS)[0].address == "Fatima.AlMansoori@dubai.example.ae"


def test_an_email_list_needs_its_own_header(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,language,area", "+971501234567,ar,DXB")
    with pytest.raises(ConfigError, match="line 1: header must be email,language,area"):
        emails(path)
    phones = write(tmp_path, "email,language,area", "a@b.example,ar,DXB", name="emails.csv")
    with pytest.raises(ConfigError, match="line 1: header must be phone,language,area"):
        list(iter_recipients(phones))


@pytest.mark.parametrize(("address", "why"), [
    ("fatima.example.ae", "must have an @-sign"),
    ("fatima@", "There must be something after the @-sign"),
    ("fatima@@example.ae", "not a usable email address"),
    ("fatima@example", "It should have a period"),
    ("fatima@mail.test", "special-use or reserved name"),
    ("fat ima@example.ae", "invalid characters before the @-sign: SPACE"),
    ("فاطمة@example.ae", "does not use SMTPUTF8; the address must be ASCII"),
    ("info@مثال.امارات", "write it as 'info@xn--"),
])
def test_a_bad_email_address_names_the_line_and_why(tmp_path: Path, address: str, why: str) -> None:
    path = write(tmp_path, "email,language,area", "ok@example.ae,ar,DXB", f"{address},en,DXB")
    with pytest.raises(ConfigError) as caught:
        emails(path, where="channels.toml: channel 'email-residents'")
    message = str(caught.value)
    assert message.startswith(f"channels.toml: channel 'email-residents': {path}: line 3: {address!r}")
    assert why in message


def test_an_email_list_is_indexed_by_format(tmp_path: Path) -> None:
    path = write(tmp_path, "email,language,area", "a@example.ae,ar,DXB", "b@example.ae,en,DXB-DEIRA")
    index = index_list(path, known_areas=AREAS, list_format=EMAIL)
    assert index.audience({"DXB"}) == {"ar": 1}
    assert dict(index.counts) == {("DXB", "ar"): 1, ("DXB-DEIRA", "en"): 1}


local_parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,15}(\.[A-Za-z0-9_+-]{1,8}){0,2}", fullmatch=True)
# Labels of letters and digits with single hyphens ("xn--" style labels are Punycode's alone).
domains = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}(-[A-Za-z0-9]{1,5})?\.(ae|gov\.ae|example|com)", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(local=local_parts, domain=domains)
def test_a_valid_address_is_kept_with_its_domain_in_lower_case(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert email_problem(address) is None
    canonical = canonical_email(address)
    assert canonical == f"{local}@{domain.lower()}"
    assert canonical_email(canonical) == canonical and email_problem(canonical) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_text_is_an_address_or_a_reason(text: str) -> None:
    """email_problem never raises: every cell of a list is either usable or refused with words."""
    problem = email_problem(text)
    if problem is None:
        assert text.isascii() and text.count("@") == 1 and text.strip() == text
    else:
        assert isinstance(problem, str) and problem

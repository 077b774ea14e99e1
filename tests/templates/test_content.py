"""The content rules: urls, phone numbers, IP addresses and numbers (finding 11), with property tests."""

from __future__ import annotations

import ipaddress
import re
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from yarl import URL

from broadcaster.channels.registry import KINDS
from broadcaster.errors import TemplateError, VariableError
from broadcaster.templates.catalogue import Catalogue, Variable
from broadcaster.templates.content import url_problem
from broadcaster.templates.variables import check_text, example_inputs, format_number, parse_number, resolve
from tests.templates.support import DUBAI, SHIPPED_TEMPLATES, edit

PROPS = settings(max_examples=200, deadline=None)
HOSTS = ("alerts.example.gov", "www.example.gov")
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=DUBAI).timestamp()


# --- url ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "why"), [
    ("https://alerts.example.gov/ evil.com @victim", "whitespace"),
    ("https://alerts.example.gov/\tx", "whitespace"),
    ("https://evil.com\\.alerts.example.gov/", "backslash"),
    ("https://alerts.example.gov\\@evil.com/", "backslash"),
    ("https://victim@alerts.example.gov/", "'@'"),
    ("https://alerts.example.gov@evil.com/", "'@'"),
    ("https://alerts.example.gov:8443/", "no port"),
    ("https://alerts.example.gov.evil.com/", "not an approved host"),
    ("https://evil.alerts.example.gov/", "not an approved host"),
    ("https://evil.com/alerts.example.gov", "not an approved host"),
    ("http://alerts.example.gov/", "https://"),
    ("HTTPS://alerts.example.gov/", "https://"),
    ("//alerts.example.gov/", "https://"),
    ("https://xn--alrts-5qa.example.gov/", "plain host"),
    ("https://аlerts.example.gov/", "ASCII"),  # Cyrillic a
    ("https://alerts.example.gov/\u202egpj.exe", "bidi"),
    ("https://alerts.example.gov/%zz", "plain URL characters"),
    ("https://alerts.example.gov/<script>", "plain URL characters"),
    ("https://alerts.example.gov/\"x\"", "plain URL characters"),
    ("https://[::1]/", "plain URL characters"),
    ("https:///alerts.example.gov", "plain host"),
])
def test_a_url_that_is_not_a_plain_https_link_to_an_allowed_host_is_refused(value: str, why: str) -> None:
    problem = url_problem(value, HOSTS)
    assert problem is not None and why in problem, problem


@pytest.mark.parametrize("value", ["https://alerts.example.gov/", "https://alerts.example.gov",
                                   "https://www.example.gov/floods/2026?area=DXB-HATTA#map",
                                   "https://alerts.example.gov/a%20b/~x_y-z.html"])
def test_a_plain_https_link_to_an_allowed_host_passes_and_one_space_more_does_not(value: str) -> None:
    assert url_problem(value, HOSTS) is None
    assert url_problem(value + " evil.com", HOSTS) is not None


URL_ALPHABET = "abcdefghijklmnopqrstuvwxyz.-:/@\\ %?#=&_~[]ABCexampleгов\u202e\t"
urls = st.one_of(
    st.text(alphabet=URL_ALPHABET, max_size=50).map(lambda s: "https://" + s),
    st.builds(lambda a, b, c: f"https://{a}{b}/{c}", st.sampled_from(["", "x@", "alerts.example.gov@", "evil.com\\."]),
              st.sampled_from([*HOSTS, "evil.com", "alerts.example.gov.evil.com", "alerts.example.gov:1"]),
              st.text(alphabet=URL_ALPHABET, max_size=20)),
    st.text(max_size=60),
)


@PROPS
@given(urls)
@example("https://alerts.example.gov/ evil.com @victim")
@example("https://evil.com\\.alerts.example.gov/")
def test_every_url_that_passes_goes_to_an_allowed_host_by_every_parser(value: str) -> None:
    if url_problem(value, HOSTS) is not None:
        return
    # Two parsers (the standard library's and yarl's) must agree: https, an allowed host, nothing hidden.
    assert urlsplit(value).scheme == "https" and urlsplit(value).hostname in HOSTS
    parsed = URL(value)
    assert parsed.scheme == "https" and parsed.host in HOSTS and parsed.port == 443
    assert parsed.user is None and parsed.password is None
    assert value.isascii() and not any(c.isspace() or c in "\\@" for c in value)


def test_a_url_variable_renders_only_when_it_passes(tmp_path: Path) -> None:
    catalogue = _with_link_variable(tmp_path)
    template = catalogue.get("road_closure")
    inputs = {**example_inputs(template, NOW, DUBAI), "link": {"ar": "https://alerts.example.gov/e11",
                                                               "en": "https://alerts.example.gov/e11"}}
    values = resolve(template, catalogue.gazetteer, inputs, DUBAI, now=NOW)
    assert values.display["link"]["en"] == "https://alerts.example.gov/e11"
    bad = "https://alerts.example.gov/ evil.com @victim"
    with pytest.raises(VariableError, match="'link'") as caught:
        resolve(template, catalogue.gazetteer, {**inputs, "link": {"ar": bad, "en": bad}}, DUBAI, now=NOW)
    assert caught.value.variable == "link"


def test_a_url_variable_must_name_plain_hosts(tmp_path: Path) -> None:
    catalogue = _with_link_variable(tmp_path, hosts='["https://alerts.example.gov"]')
    with pytest.raises(TemplateError, match="domains = \\[the official hosts"):
        catalogue.get("road_closure")


def _with_link_variable(tmp_path: Path, hosts: str = '["alerts.example.gov"]') -> Catalogue:
    folder = tmp_path / "templates"
    shutil.copytree(SHIPPED_TEMPLATES, folder)
    path = folder / "road_closure.toml"
    edit(path, "[text.ar]\n", f'[[variables]]\nname = "link"\ntype = "url"\nmax_length = 60\nrequired = false\n'
                              f'example = "https://alerts.example.gov/"\ndomains = {hosts}\n\n[text.ar]\n')
    edit(path, "المسار البديل: {detour}.\n\n", "المسار البديل: {detour}. {link}\n\n")
    edit(path, "Alternative route: {detour}.\n", "Alternative route: {detour}. {link}\n")
    return Catalogue(folder, KINDS)


# --- phone numbers and IP addresses in free text ------------------------------------------------------------

ORDINARY = ["E311 then exit 5", "Road 44. Then left", "Exit 5.5 km", "call 999", "from 10:30 to 12:00",
            "lanes 1 and 2", "Al Khail Road", "E11 and E311 and E611"]


@pytest.mark.parametrize("value", ["call 04 123 4567", "+971 4 123 4567", "Call 800 4444", "050-123-4567",
                                   "(04) 2345678", "+44 20 7946 0958", "gate 1234567", "00971501234567",
                                   "tel 041234567", "1234567890123456789012"])
def test_free_text_refuses_a_phone_number_and_ordinary_digits_pass(value: str) -> None:
    with pytest.raises(VariableError, match="looks like a phone number") as caught:
        check_text("detour", "en", value, 60)
    assert caught.value.variable == "detour"
    for ordinary in ORDINARY:  # road numbers, exits, times and short codes are not phone numbers
        check_text("detour", "en", ordinary, 60)


@pytest.mark.parametrize("value", ["اتصل على ٠٤١٢٣٤٥٦٧", "اتصل +٩٧١٤١٢٣٤٥٦٧"])
def test_free_text_refuses_a_phone_number_in_arabic_indic_digits(value: str) -> None:
    with pytest.raises(VariableError, match="looks like a phone number"):
        check_text("detour", "ar", value, 60)


@pytest.mark.parametrize("value", ["go to 10.0.0.1 now", "host 192.168.1.20", "via 2001:db8::1", "at ::1 now",
                                   "1.2.3.4.5"])
def test_free_text_refuses_an_ip_address(value: str) -> None:
    with pytest.raises(VariableError, match="looks like an IP address"):
        check_text("detour", "en", value, 60)


@pytest.mark.parametrize(("allow", "value"), [(("phone",), "call 04 123 4567"), (("ip",), "host 10.0.0.1")])
def test_a_variable_may_allow_phone_numbers_or_ip_addresses(allow: tuple[str, ...], value: str) -> None:
    check_text("detour", "en", value, 60, allow=allow)
    with pytest.raises(VariableError):
        check_text("detour", "en", value, 60)


def test_allow_is_declared_per_text_variable(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    edit(path, 'name = "detour"\ntype = "text"\n', 'name = "detour"\ntype = "text"\nallow = ["phone"]\n')
    assert catalogue.get("road_closure").variable("detour").allow == ("phone",)  # type: ignore[union-attr]
    edit(path, 'allow = ["phone"]', 'allow = ["links"]')
    with pytest.raises(TemplateError, match=r"allow = \[\.\.\.\] is for text variables and holds only phone, ip"):
        catalogue.get("road_closure")


DIGITISH = st.text(alphabet="0123456789٠١٢٣٤٥٦٧٨٩ .-+():/abcE", max_size=40)
PHONE_LIKE = re.compile(r"\d{7,}")
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d)")


def _western(value: str) -> str:
    return value.translate(str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789"))


@PROPS
@given(value=DIGITISH, lang=st.sampled_from(["ar", "en"]))
@example(value="1234567", lang="en")
@example(value="٠٤١٢٣٤٥٦٧", lang="ar")
@example(value="10.0.0.1", lang="en")
@example(value="::", lang="en")
@example(value="::1", lang="en")
def test_accepted_text_holds_no_long_digit_run_and_no_ipv4_address(value: str, lang: str) -> None:
    try:
        check_text("v", lang, value, 40)
    except VariableError:
        return
    western = _western(value)
    assert not PHONE_LIKE.search(western), value
    assert not IPV4.search(western), value
    for token in re.split(r"[\s()]+", western):
        if not any(c.isalnum() for c in token):
            continue  # "::" is an IPv6 address no phone links: punctuation alone is allowed text
        try:
            ipaddress.ip_address(token)
        except ValueError:
            continue
        raise AssertionError(f"{value!r} holds the IP address {token!r}")


# --- numbers ------------------------------------------------------------------------------------------------

def number(minimum: float, maximum: float, decimals: int) -> Variable:
    return Variable(name="n", type="number", max_length=40, required=True, examples={"ar": "1", "en": "1"},
                    minimum=minimum, maximum=maximum, decimals=decimals)


BIG = number(0, 1e12, 0)


def test_a_huge_integer_is_refused_by_the_bound_never_shown_in_scientific_notation() -> None:
    with pytest.raises(VariableError, match="outside 0 to 1000000000000"):
        parse_number("n", "123456789012345678901234567890", BIG)
    assert format_number(parse_number("n", "999999999999", BIG), 0, "en") == "999,999,999,999"
    assert format_number(parse_number("n", "999999999999", BIG), 0, "ar") == "999999999999"


def test_numbers_render_as_decimals_with_western_digits_grouped_in_english_only_never_minus_zero() -> None:
    for value, decimals, en in [("12345.5", 1, "12,345.5"), ("5", 1, "5.0"), ("-0", 0, "0"), ("-0.0", 1, "0.0"),
                                ("0.125", 3, "0.125"), ("1000000", 0, "1,000,000"), ("-12", 0, "-12"),
                                ("1000", 0, "1,000")]:
        parsed = parse_number("n", value, number(-1e6, 1e6, decimals))
        assert format_number(parsed, decimals, "en") == en, value
        # A UAE authority publishes Western digits; no Latin thousands comma inside Arabic text.
        assert format_number(parsed, decimals, "ar") == en.replace(",", ""), value


def test_a_template_number_bound_past_the_limit_is_refused(catalogue: Catalogue) -> None:
    edit(catalogue.path("earthquake"), "max = 10\n", "max = 1e30\n")
    with pytest.raises(TemplateError, match="min and max must lie within"):
        catalogue.get("earthquake")


bounds = st.tuples(st.integers(-10**12, 10**12), st.integers(-10**12, 10**12)).map(sorted)


@PROPS
@given(bounds=bounds, decimals=st.integers(0, 3),
       typed=st.one_of(st.integers(-10**31, 10**31).map(str), st.decimals(allow_nan=False, allow_infinity=False,
                                                                          places=3).map(lambda d: format(d, "f")),
                       st.text(alphabet="0123456789٠١٢٣٤٥٦٧٨٩.-e+٫", max_size=35)))
def test_every_accepted_number_is_within_its_bounds_and_renders_plainly(bounds: list[int], decimals: int,
                                                                        typed: str) -> None:
    variable = number(bounds[0], bounds[1], decimals)
    try:
        parsed = parse_number("n", typed, variable)
    except VariableError as exc:
        assert "'n'" in str(exc)
        return
    assert Decimal(bounds[0]) <= parsed <= Decimal(bounds[1])
    for lang in ("ar", "en"):
        shown = format_number(parsed, decimals, lang)
        grouped = r"\d{1,3}(,\d{3})*" if lang == "en" else r"\d+"  # no Latin thousands comma in Arabic
        assert re.fullmatch(rf"-?{grouped}(\.\d+)?", shown), shown  # never 1.2e+29, never "-0"
        assert not shown.startswith("-0") or Decimal(shown.replace(",", "")) != 0
        assert Decimal(shown.replace(",", "")) == parsed.quantize(Decimal(1).scaleb(-decimals))

"""ISIN, LEI and currency checks, held against python-stdnum and the ISO 4217 list."""

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import isin as stdnum_isin
from stdnum import lei as stdnum_lei
from stdnum.exceptions import ValidationError

from domain.identifiers import (
    currency_is_known,
    currency_minor_unit,
    isin_check_digit,
    isin_is_valid,
    lei_check_digits,
    lei_is_valid,
)

ALNUM = string.digits + string.ascii_uppercase
# Prefixes stdnum knows, so that its country check cannot mask a checksum bug.
KNOWN_PREFIXES = ["US", "RU", "GB", "DE", "FR", "JP", "CH", "NL", "XS", "EU", "KZ", "CA"]

isin_bodies = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(KNOWN_PREFIXES),
    st.text(alphabet=ALNUM, min_size=9, max_size=9),
)
lei_bodies = st.text(alphabet=ALNUM, min_size=18, max_size=18)


def corrupt(value: str, position: int, replacement: str) -> str:
    return value[:position] + replacement + value[position + 1 :]


def assert_isin_agrees_with_stdnum(value: str) -> None:
    """Ours and stdnum agree on canonical strings, the country prefix included."""
    ours = isin_is_valid(value)
    try:
        stdnum_isin.validate(value)
    except ValidationError:
        assert not ours
    else:
        assert ours


# -- ISIN ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    # XS (international securities) and EU are ISO 6166 prefixes outside ISO 3166.
    ["US0378331005", "RU0009029540", "GB0002634946", "XS0000000009", "EU000A1G0AJ7"],
)
def test_known_isins_are_valid(value: str) -> None:
    assert isin_is_valid(value)
    assert isin_check_digit(value[:11]) == value[11]


@pytest.mark.parametrize(
    "value",
    [
        "US0378331006",  # wrong check digit
        "us0378331005",  # not canonical: lower case
        " US0378331005",
        "US037833100",  # too short
        "US03783310055",  # too long
        "120378331005",  # country code must be letters
        "US037833100A",  # check character must be a digit
        "US03783310０5",  # a full-width digit is not an ASCII digit
        "AA0000000006",  # right check digit, but AA is no ISO 3166 country
        "ZU0000000003",
        "",
    ],
)
def test_bad_isins_are_refused(value: str) -> None:
    assert not isin_is_valid(value)


@pytest.mark.parametrize("body", ["US03783310", "1S0378331000", "us037833100", "US03783310-"])
def test_isin_check_digit_refuses_a_malformed_body(body: str) -> None:
    with pytest.raises(ValueError):
        isin_check_digit(body)


@given(isin_bodies)
def test_isin_check_digit_matches_stdnum(body: str) -> None:
    digit = isin_check_digit(body)
    assert digit == stdnum_isin.calc_check_digit(body)
    assert isin_is_valid(body + digit)
    assert stdnum_isin.is_valid(body + digit)


@pytest.mark.parametrize(
    ("prefix", "known"),
    [
        ("RU", True),
        ("US", True),
        ("KZ", True),
        ("XS", True),  # international securities (Euroclear/Clearstream)
        ("EU", True),  # European Union
        ("XB", True),  # NSD Russia substitute agencies
        ("AA", False),  # user-assigned in ISO 3166, no country
        ("ZZ", False),
        ("QQ", False),
        ("XX", False),
        ("UK", False),  # the United Kingdom is GB
    ],
)
def test_the_country_prefix_is_checked_not_only_its_shape(prefix: str, known: bool) -> None:
    body = prefix + "000000000"
    assert isin_is_valid(body + isin_check_digit(body)) is known


@given(isin_bodies, st.integers(0, 11), st.sampled_from(ALNUM))
def test_corrupted_isins_agree_with_stdnum(body: str, position: int, char: str) -> None:
    value = body + isin_check_digit(body)
    assert_isin_agrees_with_stdnum(corrupt(value, position, char))


@given(st.text(alphabet=ALNUM, min_size=10, max_size=14))
def test_random_isin_strings_agree_with_stdnum(value: str) -> None:
    assert_isin_agrees_with_stdnum(value)


@given(st.text(max_size=14))
def test_any_text_is_judged_without_error(value: str) -> None:
    # Whatever stdnum's clean-up accepts, we accept only the canonical form.
    if isin_is_valid(value):
        assert stdnum_isin.is_valid(value)
        assert value == value.strip().upper()


# -- LEI ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["5493001KJTIIGC8Y1R12", "7ZW8QJWVPR4P1S5PX088", "213800KUD8LAJWSQ9D15"]
)
def test_known_leis_are_valid(value: str) -> None:
    assert lei_is_valid(value)
    assert lei_check_digits(value[:18]) == value[18:]


@pytest.mark.parametrize(
    "value",
    [
        "5493001KJTIIGC8Y1R13",  # wrong check digits
        "213800KUD8LXJWSQ9D15",  # corrupted body
        "5493001kjtiigc8y1r12",  # lower case
        "5493001KJTIIGC8Y1R1",  # too short
        "1",  # 1 mod 97 == 1, which stdnum accepts; not a LEI
        "5493001KJTIIGC8Y1RA2",  # check characters must be digits
    ],
)
def test_bad_leis_are_refused(value: str) -> None:
    assert not lei_is_valid(value)


@given(lei_bodies)
def test_lei_check_digits_make_valid_leis(body: str) -> None:
    value = body + lei_check_digits(body)
    assert lei_is_valid(value)
    assert stdnum_lei.is_valid(value)


@given(lei_bodies, st.integers(0, 19), st.sampled_from(ALNUM))
def test_corrupted_leis_agree_with_stdnum(body: str, position: int, char: str) -> None:
    value = corrupt(body + lei_check_digits(body), position, char)
    tail_is_digits = value[18:].isdigit()
    assert lei_is_valid(value) == (tail_is_digits and stdnum_lei.is_valid(value))


@given(lei_bodies, st.text(alphabet=string.digits, min_size=2, max_size=2))
def test_random_leis_agree_with_stdnum(body: str, check: str) -> None:
    assert lei_is_valid(body + check) == stdnum_lei.is_valid(body + check)


@given(st.text(max_size=22))
def test_any_text_is_judged_as_a_lei_without_error(value: str) -> None:
    if lei_is_valid(value):
        assert stdnum_lei.is_valid(value)


# -- currencies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "minor_unit"),
    [
        ("RUB", 2),
        ("USD", 2),
        ("EUR", 2),
        ("JPY", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("OMR", 3),
        ("TND", 3),
    ],
)
def test_currency_minor_units(code: str, minor_unit: int) -> None:
    assert currency_is_known(code)
    assert currency_minor_unit(code) == minor_unit


@pytest.mark.parametrize("code", ["XAU", "XXX", "XDR"])
def test_units_without_minor_unit(code: str) -> None:
    assert currency_is_known(code)
    assert currency_minor_unit(code) is None


@pytest.mark.parametrize("code", ["ZZZ", "usd", "US", "USDD", "", "RUR"])
def test_unknown_currencies(code: str) -> None:
    assert not currency_is_known(code)
    assert currency_minor_unit(code) is None

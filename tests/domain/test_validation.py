"""parse_terms / parse_amendment / parse_positions: every rule, every problem, no crash."""

import json
import string
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from domain.codes import (
    CASH_EVENTS,
    SECURITY_EVENTS,
    EventType,
    MandatoryVoluntary,
    OptionKind,
)
from domain.identifiers import isin_check_digit
from domain.money import canonical, format_amount, format_rate, parse_decimal, round_half_up
from domain.positions import Position, PositionsSnapshot, parse_positions, positions_to_payload
from domain.terms import CorporateActionTerms, ElectionOption, Money, Ratio
from domain.validation import (
    FIELD_NAMES,
    InvalidInput,
    Problem,
    canonical_text,
    changed_fields,
    parse_amendment,
    parse_terms,
    terms_to_payload,
)

Payload = dict[str, Any]


def dividend(**changes: Any) -> Payload:
    payload: Payload = {
        "reference": "RU-DVCA-2026-001",
        "eventType": "DVCA",
        "mandatoryVoluntary": "MAND",
        "isin": "RU0009029540",
        "securityName": "Sberbank ordinary",
        "announcementDate": "2026-11-01",
        "exDate": "2026-11-30",
        "recordDate": "2026-12-01",
        "paymentDate": "2026-12-15",
        "grossRate": {"amount": "12.35", "currency": "RUB"},
    }
    payload.update(changes)
    return payload


def tender(**changes: Any) -> Payload:
    payload: Payload = {
        "reference": "US-TEND-7",
        "eventType": "TEND",
        "mandatoryVoluntary": "VOLU",
        "isin": "US0378331005",
        "announcementDate": "2026-11-01",
        "recordDate": "2026-12-01",
        "responseDeadline": "2026-11-20T18:00:00+03:00",
        "options": [
            {"number": 2, "kind": "NOAC", "isDefault": True},
            {"number": 1, "kind": "CASH", "isDefault": False},
        ],
    }
    payload.update(changes)
    return payload


def problems_of(payload: Any) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(InvalidInput) as caught:
        parse_terms(payload)
    return {p.path: p.message for p in caught.value.problems}


# -- accepted inputs ------------------------------------------------------------


def test_a_cash_dividend_parses() -> None:
    terms = parse_terms(dividend())
    assert terms.event_type is EventType.DVCA
    assert terms.gross_rate == Money(Decimal("12.35"), "RUB")
    assert terms.record_date == date(2026, 12, 1)
    assert terms.options == ()
    assert terms.ratio is None


def test_an_election_parses_with_utc_deadline_and_sorted_options() -> None:
    terms = parse_terms(tender())
    assert terms.response_deadline == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert terms.response_deadline is not None
    assert terms.response_deadline.utcoffset() == timedelta(0)
    assert [o.number for o in terms.options] == [1, 2]
    assert terms.options[1] == ElectionOption(2, OptionKind.NOAC, is_default=True)


def test_a_split_parses() -> None:
    terms = parse_terms(
        dividend(eventType="SPLF", grossRate=None, ratio={"numerator": 3, "denominator": 2})
    )
    assert terms.ratio == Ratio(3, 2)
    assert terms.gross_rate is None


def test_optional_fields_may_be_absent_or_null() -> None:
    minimal = {
        k: v for k, v in dividend().items() if k not in ("securityName", "exDate", "paymentDate")
    }
    nulls = dividend(securityName=None, exDate=None, paymentDate=None, ratio=None, options=None)
    assert parse_terms(minimal) == parse_terms(nulls)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1", "JPY"), ("0.005", "BHD"), ("1.250", "KWD"), ("007.50", "USD"), ("0.01", "EUR")],
)
def test_amounts_within_the_minor_unit(amount: str, currency: str) -> None:
    terms = parse_terms(dividend(grossRate={"amount": amount, "currency": currency}))
    assert terms.gross_rate == Money(Decimal(amount), currency)


def test_dates_may_be_equal() -> None:
    same = "2026-12-01"
    parse_terms(dividend(announcementDate=same, exDate=same, recordDate=same, paymentDate=same))


# -- refused inputs: paths and all-at-once --------------------------------------


def test_three_bad_fields_give_three_problems_with_their_paths() -> None:
    payload = dividend(
        isin="RU0009029541",
        grossRate={"amount": "12.12345678901", "currency": "RUB"},
        options=[
            {"number": 1, "kind": "CASH", "isDefault": False},
            {"number": 1000, "kind": "SECU", "isDefault": False},
        ],
    )
    found = problems_of(payload)
    assert set(found) == {("isin",), ("grossRate", "amount"), ("options", 1, "number")}
    assert "10 decimal places" in found[("grossRate", "amount")]


def test_the_error_message_names_every_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_terms(dividend(isin="X", recordDate="tomorrow"))
    assert "isin:" in str(caught.value)
    assert "recordDate:" in str(caught.value)
    assert Problem(("options", 1, "number"), "x").field == "options[1].number"
    assert Problem(("grossRate", "amount"), "x").field == "grossRate.amount"
    assert Problem((), "x").field == "input"


def test_everything_missing_is_reported_at_once() -> None:
    found = problems_of({})
    assert set(found) == {
        ("reference",),
        ("eventType",),
        ("mandatoryVoluntary",),
        ("isin",),
        ("announcementDate",),
        ("recordDate",),
    }


def test_not_an_object() -> None:
    assert problems_of(["reference"]) == {(): "must be an object"}


def test_unknown_keys_are_errors_at_every_level() -> None:
    payload = dividend(
        colour="red",
        grossRate={"amount": "1", "currency": "RUB", "net": "0.87"},
        ratio=None,
    )
    payload["eventType"] = "MEET"
    payload["options"] = [{"number": 1, "kind": "CASH", "isDefault": True, "x": 1}]
    assert set(problems_of(payload)) == {
        ("colour",),
        ("grossRate", "net"),
        ("options", 0, "x"),
    }


@pytest.mark.parametrize(
    "amount",
    [
        "1e2",
        "1E2",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "+1",
        "1.",
        ".5",
        " 1",
        "1 ",
        "1,5",
        "١٢",  # Arabic-Indic digits: Decimal would take them, we do not
        "",
        "1" * 41,
        "0x10",
        "1_000",
    ],
)
def test_amounts_that_are_not_plain_decimals(amount: str) -> None:
    found = problems_of(dividend(grossRate={"amount": amount, "currency": "RUB"}))
    assert set(found) == {("grossRate", "amount")}


@pytest.mark.parametrize("amount", [12.35, 12, None, True, ["1"], {"v": "1"}])
def test_amounts_of_the_wrong_type(amount: object) -> None:
    found = problems_of(dividend(grossRate={"amount": amount, "currency": "RUB"}))
    assert set(found) == {("grossRate", "amount")}


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("0", "RUB"),
        ("0.00", "RUB"),
        ("-1", "RUB"),
        ("0.00000000001", "JPY"),  # 11 decimals: a rate carries at most 10
        ("1.12345678905", "USD"),
    ],
)
def test_amounts_out_of_bounds(amount: str, currency: str) -> None:
    assert set(problems_of(dividend(grossRate={"amount": amount, "currency": currency}))) == {
        ("grossRate", "amount")
    }


@pytest.mark.parametrize("currency", ["ZZZ", "XAU", "XXX", "US", "ＵＳＤ", 840, None])
def test_bad_currencies(currency: object) -> None:
    found = problems_of(dividend(grossRate={"amount": "1", "currency": currency}))
    assert set(found) == {("grossRate", "currency")}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reference", ""),
        ("reference", "x" * 36),
        ("reference", " \t "),  # nothing left once trimmed
        ("reference", "CA\n1"),
        ("reference", "CA\u202e1"),  # bidi override
        ("reference", "CA\ud8001"),  # lone surrogate
        ("reference", 17),
        ("securityName", "x" * 141),
        ("securityName", ""),
        ("isin", "RU0009029541"),
        ("isin", "AA0000000006"),  # right check digit, but AA is no country
        ("isin", 12345),
        ("eventType", "dvca"),
        ("eventType", "XXXX"),
        ("mandatoryVoluntary", "VOLUNTARY"),
        ("announcementDate", "2026-13-01"),
        ("announcementDate", "20261101"),
        ("announcementDate", "2026-W44-7"),
        ("announcementDate", "2026-11-01T00:00:00"),
        ("recordDate", 20261201),
        ("exDate", "2026-02-30"),
        ("responseDeadline", "2026-11-20T18:00:00"),  # no offset
        ("responseDeadline", "2026-11-20"),
        ("responseDeadline", "2026-11-20T25:00:00Z"),
        ("responseDeadline", "0001-01-01T00:00:00+01:00"),  # overflows in UTC
        ("ratio", {"numerator": 3}),
        ("options", "CASH"),
        ("options", [None]),
    ],
)
def test_bad_single_fields(field: str, value: object) -> None:
    payload = dividend(**{field: value})
    if field == "ratio":
        payload["eventType"] = "MRGR"  # a ratio is optional there, so only its shape is wrong
    found = problems_of(payload)
    assert {path[0] for path in found} == {field}


def test_reference_of_35_characters_is_accepted() -> None:
    assert parse_terms(dividend(reference="R" * 35)).reference == "R" * 35


@pytest.mark.parametrize(
    ("dates", "reported"),
    [
        ({"exDate": "2026-10-01"}, {("exDate",)}),
        ({"recordDate": "2026-11-29"}, {("recordDate",)}),
        ({"paymentDate": "2026-11-30"}, {("paymentDate",)}),
        ({"exDate": None, "recordDate": "2026-10-01"}, {("recordDate",)}),
        ({"exDate": None, "paymentDate": "2026-10-01"}, {("paymentDate",)}),
        ({"announcementDate": "2027-01-01"}, {("exDate",), ("recordDate",), ("paymentDate",)}),
    ],
)
def test_date_order_is_reported_on_the_later_field(
    dates: Payload, reported: set[tuple[str, ...]]
) -> None:
    assert set(problems_of(dividend(**dates))) == reported


def test_cash_events_need_a_gross_rate_and_no_ratio() -> None:
    found = problems_of(dividend(grossRate=None, ratio={"numerator": 1, "denominator": 1}))
    assert set(found) == {("grossRate",), ("ratio",)}
    assert "cash event" in found[("grossRate",)]


def test_security_events_need_a_ratio_and_no_gross_rate() -> None:
    found = problems_of(dividend(eventType="DVSE"))
    assert set(found) == {("grossRate",), ("ratio",)}


@pytest.mark.parametrize(
    "ratio",
    [
        {"numerator": 0, "denominator": 1},
        {"numerator": 1, "denominator": 0},
        {"numerator": -3, "denominator": 2},
        {"numerator": True, "denominator": 1},
        {"numerator": 1.5, "denominator": 1},
        {"numerator": "3", "denominator": 1},
        {"numerator": 2**31, "denominator": 1},
    ],
)
def test_bad_ratios(ratio: Payload) -> None:
    found = problems_of(dividend(eventType="SPLF", grossRate=None, ratio=ratio))
    assert len(found) == 1
    assert next(iter(found))[0] == "ratio"


def test_a_bad_required_rate_is_reported_once() -> None:
    found = problems_of(dividend(grossRate={"amount": "x", "currency": "RUB"}))
    assert set(found) == {("grossRate", "amount")}


@pytest.mark.parametrize("mv", ["CHOS", "VOLU"])
def test_elections_need_a_deadline_and_options(mv: str) -> None:
    found = problems_of(tender(mandatoryVoluntary=mv, responseDeadline=None, options=[]))
    assert set(found) == {("responseDeadline",), ("options",)}


def test_mandatory_events_may_have_options_or_not() -> None:
    assert parse_terms(dividend(options=[])).options == ()
    with_options = parse_terms(dividend(options=[{"number": 1, "kind": "CASH", "isDefault": True}]))
    assert with_options.options == (ElectionOption(1, OptionKind.CASH, is_default=True),)


def test_option_rules_report_each_offending_entry() -> None:
    options = [
        {"number": 1, "kind": "CASH", "isDefault": True},
        {"number": 1, "kind": "SECU", "isDefault": False},
        {"number": 0, "kind": "CASE", "isDefault": True},
        {"number": 3, "kind": "WHAT", "isDefault": "yes"},
        {"number": True, "kind": "NOAC", "isDefault": False},
        {"kind": "NOAC", "isDefault": False},
    ]
    assert set(problems_of(tender(options=options))) == {
        ("options", 1, "number"),
        ("options", 2, "number"),
        ("options", 2, "isDefault"),
        ("options", 3, "kind"),
        ("options", 3, "isDefault"),
        ("options", 4, "number"),
        ("options", 5, "number"),
    }


# -- amendments and changes ----------------------------------------------------


def test_an_amendment_changes_only_what_it_names() -> None:
    current = parse_terms(dividend())
    amended = parse_amendment(current, {"grossRate": {"amount": "13", "currency": "RUB"}})
    assert amended.gross_rate == Money(Decimal("13"), "RUB")
    assert changed_fields(current, amended) == ("grossRate",)


def test_an_amendment_can_clear_optional_fields() -> None:
    current = parse_terms(dividend())
    amended = parse_amendment(current, {"paymentDate": None, "securityName": None})
    assert amended.payment_date is None
    assert amended.security_name is None
    assert changed_fields(current, amended) == ("paymentDate", "securityName")


def test_an_amendment_is_validated_as_a_whole() -> None:
    current = parse_terms(dividend())
    with pytest.raises(InvalidInput) as caught:
        parse_amendment(
            current,
            {"recordDate": None, "exDate": "2026-12-31", "eventType": "SPLF", "id": "x"},
        )
    assert {p.path for p in caught.value.problems} == {
        ("recordDate",),
        ("paymentDate",),  # now before the new exDate
        ("ratio",),
        ("grossRate",),
        ("id",),
    }


def test_an_empty_amendment_changes_nothing() -> None:
    current = parse_terms(tender())
    assert parse_amendment(current, {}) == current


def test_changed_fields_compares_values_and_option_order_does_not_matter() -> None:
    a = parse_terms(tender())
    b = parse_terms(tender(options=list(reversed(tender()["options"]))))
    assert changed_fields(a, b) == ()
    c = parse_terms(dividend())
    d = parse_terms(dividend(grossRate={"amount": "12.350", "currency": "KWD"}))
    assert changed_fields(c, d) == ("grossRate",)
    e = parse_terms(dividend(grossRate={"amount": "12.350", "currency": "KWD"}, reference="Z"))
    assert changed_fields(d, e) == ("reference",)
    assert changed_fields(a, c) == tuple(
        sorted(
            [
                "reference",
                "eventType",
                "mandatoryVoluntary",
                "isin",
                "securityName",
                "exDate",
                "paymentDate",
                "responseDeadline",
                "grossRate",
                "options",
            ]
        )
    )


# -- properties ------------------------------------------------------------------

ALNUM = string.digits + string.ascii_uppercase
CURRENCIES = ["RUB", "USD", "EUR", "JPY", "BHD", "KWD", "OMR", "TND", "CLF", "CHF"]


@st.composite
def isins(draw: st.DrawFn) -> str:
    body = draw(st.sampled_from(["RU", "US", "XS", "DE"])) + draw(
        st.text(alphabet=ALNUM, min_size=9, max_size=9)
    )
    return body + isin_check_digit(body)


def texts(max_size: int) -> st.SearchStrategy[str]:
    # Short texts keep generation cheap; the longest allowed one comes up too.
    short = st.text(
        alphabet=st.characters(exclude_categories=("C", "Zl", "Zp")), min_size=1, max_size=12
    ).map(lambda s: canonical_text(s) or "x")
    return short | st.just("Я" * max_size)


@st.composite
def moneys(draw: st.DrawFn) -> Money:
    """Gross rates per security: up to 10 decimals whatever the currency."""
    currency = draw(st.sampled_from(CURRENCIES))
    places = draw(st.integers(0, 10))
    units = draw(st.integers(1, 10**18))
    return Money(canonical(Decimal(units).scaleb(-places)), currency)


@st.composite
def ratios(draw: st.DrawFn, event_type: EventType) -> Ratio:
    """Ratios that fit the event: SPLF gives more securities, SPLR fewer."""
    a, b = draw(st.integers(1, 2**31 - 1)), draw(st.integers(1, 2**31 - 1))
    if event_type is EventType.SPLF:
        assume(a != b)
        return Ratio(max(a, b), min(a, b))
    if event_type is EventType.SPLR:
        assume(a != b)
        return Ratio(min(a, b), max(a, b))
    return Ratio(a, b)


@st.composite
def election_options(draw: st.DrawFn, min_size: int) -> tuple[ElectionOption, ...]:
    numbers = sorted(draw(st.sets(st.integers(1, 999), min_size=min_size, max_size=5)))
    default = draw(st.none() | st.sampled_from(numbers)) if numbers else None
    return tuple(
        ElectionOption(n, draw(st.sampled_from(OptionKind)), is_default=n == default)
        for n in numbers
    )


@st.composite
def valid_terms(draw: st.DrawFn) -> CorporateActionTerms:
    event_type = draw(st.sampled_from(EventType))
    mv = draw(st.sampled_from(MandatoryVoluntary))
    election = mv is not MandatoryVoluntary.MAND
    announcement = draw(st.dates(date(2000, 1, 1), date(2100, 1, 1)))
    gaps = st.integers(0, 400).map(lambda days: timedelta(days=days))
    ex = announcement + draw(gaps)
    record = ex + draw(gaps)
    payment = record + draw(gaps)
    if event_type in CASH_EVENTS:
        gross_rate, ratio = draw(moneys()), None
    elif event_type in SECURITY_EVENTS:
        gross_rate, ratio = None, draw(ratios(event_type))
    else:
        gross_rate, ratio = draw(st.none() | moneys()), draw(st.none() | ratios(event_type))
    deadline = draw(
        st.datetimes(datetime(1990, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC))
        if election
        else st.none()
    )
    return CorporateActionTerms(
        reference=draw(texts(35)),
        event_type=event_type,
        mandatory_voluntary=mv,
        isin=draw(isins()),
        security_name=draw(st.none() | texts(140)),
        announcement_date=announcement,
        ex_date=draw(st.none() | st.just(ex)),
        record_date=record,
        payment_date=draw(st.none() | st.just(payment)),
        response_deadline=deadline,
        gross_rate=gross_rate,
        ratio=ratio,
        options=draw(election_options(1 if election else 0)),
    )


@given(valid_terms())
def test_terms_round_trip_through_their_payload(terms: CorporateActionTerms) -> None:
    payload = terms_to_payload(terms)
    # JSON-compatible: survives a trip through JSON text.
    again = parse_terms(json.loads(json.dumps(payload)))
    assert again == terms
    assert terms_to_payload(again) == payload
    assert changed_fields(terms, again) == ()


def comparable(terms: CorporateActionTerms) -> Payload:
    """The payload with amounts as numbers: 1.5 and 1.50 are the same rate."""
    payload = terms_to_payload(terms)
    if isinstance(rate := payload["grossRate"], dict):
        payload["grossRate"] = {**rate, "amount": Decimal(rate["amount"])}
    return payload


@given(valid_terms(), valid_terms(), st.sets(st.sampled_from(sorted(FIELD_NAMES))))
def test_changed_fields_names_exactly_the_differing_payload_fields(
    a: CorporateActionTerms, b: CorporateActionTerms, taken_from_b: set[str]
) -> None:
    mixed = replace(a, **{name: getattr(b, name) for name in taken_from_b})
    before, after = comparable(a), comparable(mixed)
    expected = sorted(key for key in before if before[key] != after[key])
    assert changed_fields(a, mixed) == tuple(expected)
    assert set(expected) <= {FIELD_NAMES[name] for name in taken_from_b}


def test_changed_fields_ignores_trailing_zeros_of_a_rate() -> None:
    a = parse_terms(dividend(grossRate={"amount": "1.5", "currency": "RUB"}))
    b = parse_terms(dividend(grossRate={"amount": "1.50", "currency": "RUB"}))
    assert changed_fields(a, b) == ()


@given(
    st.datetimes(datetime(1990, 1, 1), datetime(2200, 1, 1)),
    st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
    st.booleans(),
)
def test_deadlines_with_any_offset_are_stored_in_utc(
    naive: datetime, tz: timezone, zulu: bool
) -> None:
    moment = naive.replace(tzinfo=tz)
    text = moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if zulu else moment.isoformat()
    parsed = parse_terms(tender(responseDeadline=text))
    assert parsed.response_deadline == moment
    assert parsed.response_deadline is not None
    assert parsed.response_deadline.tzinfo == UTC


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["2026-12-01", "12.35", "RUB", "DVCA", "CHOS", "CASH", "1e9", "NaN"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
# Cheaper junk for where nesting depth adds nothing.
shallow_values = json_scalars | st.lists(json_scalars, max_size=2)
junk_keys = st.sampled_from([*dividend(), "ratio", "options", "responseDeadline"]) | st.text(
    max_size=8
)
junk_payloads = st.dictionaries(junk_keys, json_values, max_size=10)


def assert_parses_or_reports(parse: Any, payload: Any) -> None:
    try:
        parse(payload)
    except InvalidInput as exc:
        assert exc.problems
        for problem in exc.problems:
            assert all(isinstance(part, str | int) for part in problem.path)
            assert problem.message
            assert isinstance(problem.field, str)


@given(junk_payloads)
def test_junk_never_raises_anything_but_invalid_input(payload: Payload) -> None:
    assert_parses_or_reports(parse_terms, payload)


@given(st.data())
def test_valid_payloads_with_junk_fields_never_crash(data: st.DataObject) -> None:
    payload = data.draw(st.sampled_from([dividend(), tender()]))
    for key in data.draw(st.sets(junk_keys, max_size=4)):
        payload[key] = data.draw(json_values)
    assert_parses_or_reports(parse_terms, payload)


@given(json_values)
def test_non_object_junk_never_crashes(value: object) -> None:
    assert_parses_or_reports(parse_terms, value)
    assert_parses_or_reports(parse_positions, value)


@given(valid_terms(), junk_payloads)
def test_junk_amendments_never_crash(terms: CorporateActionTerms, changes: Payload) -> None:
    assert_parses_or_reports(lambda c: parse_amendment(terms, c), changes)


@given(st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3, unique=True))
def test_problems_are_collected_not_stopped_at_the_first(bad: list[int]) -> None:
    breakers: dict[int, tuple[str, Any]] = {
        1: ("isin", "NOPE"),
        2: ("recordDate", "soon"),
        3: ("reference", ""),
    }
    payload = dividend(**dict(breakers[i] for i in bad))
    assert set(problems_of(payload)) == {(breakers[i][0],) for i in bad}


# -- money helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "minor_unit", "text"),
    [
        ("12.3", 2, "12.30"),
        ("5", 0, "5"),
        ("1.25", 3, "1.250"),
        ("2.345", 2, "2.35"),
        ("2.344", 2, "2.34"),
        ("0.5", 0, "1"),
        ("-0.001", 2, "0.00"),
        ("123456789012345678901234567890123.455", 2, "123456789012345678901234567890123.46"),
    ],
)
def test_format_amount(amount: str, minor_unit: int, text: str) -> None:
    assert format_amount(Decimal(amount), minor_unit) == text


@pytest.mark.parametrize(
    ("rate", "minor_unit", "text"),
    [
        ("33.3", 2, "33.30"),
        ("1.2300", 2, "1.23"),
        ("0.00110609", 2, "0.00110609"),
        ("33", 0, "33"),
        ("1.5000", 3, "1.500"),
        ("1E+2", 2, "100.00"),
    ],
)
def test_format_rate_is_exact_with_at_least_the_minor_unit(
    rate: str, minor_unit: int, text: str
) -> None:
    assert format_rate(Decimal(rate), minor_unit) == text


def test_round_half_up_keeps_every_digit_of_huge_amounts() -> None:
    huge = Decimal("9" * 39 + ".5")
    assert round_half_up(huge, 0) == Decimal("1" + "0" * 39)


@pytest.mark.parametrize("text", ["0", "-0", "12.35", "-3", "000.10"])
def test_parse_decimal_accepts_plain_decimals(text: str) -> None:
    value = parse_decimal(text)
    assert value == Decimal(text)
    assert not value.is_signed() or value < 0


# -- positions --------------------------------------------------------------------


def snapshot(*positions: Payload, **changes: Any) -> Payload:
    payload: Payload = {"isin": "RU0009029540", "asOf": "2026-12-01", "positions": list(positions)}
    payload.update(changes)
    return payload


def position(account: str = "ACC-1", quantity: str = "100", tax: str = "13") -> Payload:
    return {"accountId": account, "quantity": quantity, "taxRatePercent": tax}


def test_positions_parse_and_round_trip() -> None:
    payload = snapshot(position(), position("ACC-2", "0.5", "0"), position("ACC-3", "0", "100"))
    parsed = parse_positions(payload)
    assert parsed == PositionsSnapshot(
        "RU0009029540",
        date(2026, 12, 1),
        (
            Position("ACC-1", Decimal(100), Decimal(13)),
            Position("ACC-2", Decimal("0.5"), Decimal(0)),
            Position("ACC-3", Decimal(0), Decimal(100)),
        ),
    )
    assert positions_to_payload(parsed) == payload
    assert parse_positions(json.loads(json.dumps(positions_to_payload(parsed)))) == parsed


def test_an_empty_snapshot_is_valid() -> None:
    assert parse_positions(snapshot()).positions == ()


def test_position_problems_are_all_reported() -> None:
    payload = snapshot(
        position(),
        position("ACC-1"),
        position("ACC-2", "-1", "101"),
        position("", "1e3", "13.5"),
        position("x" * 65),
        {"accountId": "ACC-9", "quantity": 5, "taxRatePercent": "13", "extra": 1},
        isin="RU0009029541",
        asOf="2026-12-32",
        colour="red",
    )
    with pytest.raises(InvalidInput) as caught:
        parse_positions(payload)
    assert {p.path for p in caught.value.problems} == {
        ("isin",),
        ("asOf",),
        ("colour",),
        ("positions", 1, "accountId"),
        ("positions", 2, "quantity"),
        ("positions", 2, "taxRatePercent"),
        ("positions", 3, "accountId"),
        ("positions", 3, "quantity"),
        ("positions", 4, "accountId"),
        ("positions", 5, "quantity"),
        ("positions", 5, "extra"),
    }


def test_positions_are_required() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_positions({"isin": "RU0009029540", "asOf": "2026-12-01"})
    assert [p.path for p in caught.value.problems] == [("positions",)]


@given(st.dictionaries(st.sampled_from(["isin", "asOf", "positions", "x"]), json_values))
def test_junk_positions_never_crash(payload: Payload) -> None:
    assert_parses_or_reports(parse_positions, payload)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "accountId": shallow_values,
                "quantity": shallow_values,
                "taxRatePercent": shallow_values,
            }
        ),
        max_size=4,
    )
)
def test_junk_position_entries_never_crash(entries: list[Payload]) -> None:
    assert_parses_or_reports(parse_positions, snapshot(*entries))


# -- issue 11: domain checks (kind 9), rates per security (kind 10), bounds (kind 4) --


def test_an_isin_whose_prefix_is_no_country_is_refused() -> None:
    # AA0000000006 has a correct ISO 6166 check digit; AA is no ISO 3166 code.
    found = problems_of(dividend(isin="AA0000000006"))
    assert set(found) == {("isin",)}
    assert "country" in found[("isin",)]
    assert parse_terms(dividend(isin="XS0000000009")).isin == "XS0000000009"


@pytest.mark.parametrize(
    ("event_type", "numerator", "denominator"),
    [("SPLF", 1, 10), ("SPLF", 1, 1), ("SPLR", 10, 1), ("SPLR", 3, 3)],
)
def test_a_split_must_go_its_own_way(event_type: str, numerator: int, denominator: int) -> None:
    ratio = {"numerator": numerator, "denominator": denominator}
    found = problems_of(dividend(eventType=event_type, grossRate=None, ratio=ratio))
    assert set(found) == {("ratio",)}
    assert "numerator" in found[("ratio",)] and event_type in found[("ratio",)]


@pytest.mark.parametrize(
    ("event_type", "numerator", "denominator"), [("SPLF", 2, 1), ("SPLF", 3, 2), ("SPLR", 1, 10)]
)
def test_splits_in_their_direction_are_accepted(
    event_type: str, numerator: int, denominator: int
) -> None:
    ratio = {"numerator": numerator, "denominator": denominator}
    terms = parse_terms(dividend(eventType=event_type, grossRate=None, ratio=ratio))
    assert terms.ratio == Ratio(numerator, denominator)


def test_an_amendment_that_turns_a_split_around_is_refused() -> None:
    split = parse_terms(
        dividend(eventType="SPLF", grossRate=None, ratio={"numerator": 2, "denominator": 1})
    )
    with pytest.raises(InvalidInput) as caught:
        parse_amendment(split, {"eventType": "SPLR"})
    assert [p.path for p in caught.value.problems] == [("ratio",)]


def test_a_rate_per_security_may_carry_more_decimals_than_its_currency() -> None:
    terms = parse_terms(dividend(grossRate={"amount": "0.00110609", "currency": "RUB"}))
    assert terms.gross_rate == Money(Decimal("0.00110609"), "RUB")
    assert terms_to_payload(terms)["grossRate"] == {"amount": "0.00110609", "currency": "RUB"}
    ten = parse_terms(dividend(grossRate={"amount": "1.0123456789", "currency": "JPY"}))
    assert ten.gross_rate == Money(Decimal("1.0123456789"), "JPY")


def test_a_rate_is_compared_by_value() -> None:
    spelled = parse_terms(dividend(grossRate={"amount": "1.2300", "currency": "USD"}))
    plain = parse_terms(dividend(grossRate={"amount": "1.23", "currency": "USD"}))
    assert spelled.gross_rate == Money(Decimal("1.23"), "USD")
    assert changed_fields(plain, spelled) == ()
    assert terms_to_payload(spelled) == terms_to_payload(plain)
    # Trailing zeros do not count towards the 10 decimals.
    assert parse_terms(dividend(grossRate={"amount": "1." + "0" * 20, "currency": "USD"}))


def test_codes_are_kept_upper_case() -> None:
    terms = parse_terms(dividend(isin="ru0009029540", grossRate={"amount": "1", "currency": "usd"}))
    assert (terms.isin, terms.gross_rate) == ("RU0009029540", Money(Decimal(1), "USD"))


@pytest.mark.parametrize("quantity", ["9" * 40, "1" + "0" * 15, "1000000000000000.5"])
def test_a_holding_of_10_to_the_15_or_more_is_refused(quantity: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_positions(snapshot(position(quantity=quantity)))
    assert [p.path for p in caught.value.problems] == [("positions", 0, "quantity")]
    assert "10^15" in caught.value.problems[0].message


def test_the_largest_holding_is_accepted() -> None:
    parsed = parse_positions(snapshot(position(quantity="999999999999999.999999")))
    assert parsed.positions[0].quantity == Decimal("999999999999999.999999")

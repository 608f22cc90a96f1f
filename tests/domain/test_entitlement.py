"""Entitlement math against hand-worked examples and an independent Fraction model."""

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.codes import CASH_EVENTS, SECURITY_EVENTS, EventType, MandatoryVoluntary
from domain.entitlement import FRACTION_PLACES, Entitlement, compute_entitlement
from domain.identifiers import currency_minor_unit
from domain.money import decimal_places
from domain.terms import CorporateActionTerms, Money, Ratio

CURRENCIES = ["RUB", "USD", "EUR", "JPY", "BHD", "KWD", "OMR", "TND", "CLF", "ISK"]


def terms(
    event_type: EventType = EventType.DVCA,
    gross_rate: Money | None = None,
    ratio: Ratio | None = None,
) -> CorporateActionTerms:
    return CorporateActionTerms(
        reference="CA-1",
        event_type=event_type,
        mandatory_voluntary=MandatoryVoluntary.MAND,
        isin="RU0009029540",
        security_name=None,
        announcement_date=date(2026, 11, 1),
        ex_date=None,
        record_date=date(2026, 12, 1),
        payment_date=None,
        response_deadline=None,
        gross_rate=gross_rate,
        ratio=ratio,
        options=(),
    )


def cash(amount: str, currency: str = "RUB") -> CorporateActionTerms:
    return terms(gross_rate=Money(Decimal(amount), currency))


def split(numerator: int, denominator: int) -> CorporateActionTerms:
    return terms(EventType.SPLF, ratio=Ratio(numerator, denominator))


# -- worked examples ------------------------------------------------------------


def test_105_shares_3_for_2_give_157_and_half_a_share() -> None:
    result = compute_entitlement(split(3, 2), Decimal(105), Decimal(13))
    assert result == Entitlement(None, None, None, securities=157, fraction=Decimal("0.5"))


def test_a_third_is_truncated_not_rounded_up() -> None:
    result = compute_entitlement(split(2, 3), Decimal(1), Decimal(0))
    assert result is not None
    assert result.securities == 0
    assert result.fraction == Decimal("0.666666666")


def test_a_whole_result_leaves_no_fraction() -> None:
    result = compute_entitlement(split(1, 10), Decimal(100), Decimal(0))
    assert result is not None
    assert (result.securities, result.fraction) == (10, Decimal(0))


@pytest.mark.parametrize(
    ("quantity", "rate", "currency", "tax_rate", "gross", "tax", "net"),
    [
        ("1000", "12.35", "RUB", "13", "12350.00", "1605.50", "10744.50"),
        ("3", "0.35", "RUB", "13", "1.05", "0.14", "0.91"),  # 0.1365 -> 0.14
        ("7", "0.05", "USD", "15", "0.35", "0.05", "0.30"),  # 0.0525 -> 0.05
        ("1", "0.005", "KWD", "10", "0.005", "0.001", "0.004"),  # 0.0005 -> 0.001: tie goes up
        ("3", "33", "JPY", "15.315", "99", "15", "84"),  # 15.16185 -> 15
        ("0.5", "1", "JPY", "0", "1", "0", "1"),  # 0.5 yen -> 1: half up
        ("0", "12.35", "RUB", "13", "0.00", "0.00", "0.00"),
        ("10", "1.01", "USD", "100", "10.10", "10.10", "0.00"),
    ],
)
def test_cash_examples(
    quantity: str, rate: str, currency: str, tax_rate: str, gross: str, tax: str, net: str
) -> None:
    result = compute_entitlement(cash(rate, currency), Decimal(quantity), Decimal(tax_rate))
    assert result is not None
    assert result.gross == Money(Decimal(gross), currency)
    assert result.tax == Money(Decimal(tax), currency)
    assert result.net == Money(Decimal(net), currency)
    assert (result.securities, result.fraction) == (None, None)
    for money, text in ((result.gross, gross), (result.tax, tax), (result.net, net)):
        assert money is not None
        assert str(money.amount) == text  # carries exactly the minor unit


def test_tax_comes_from_the_rounded_gross() -> None:
    # 0.5 x 0.25 EUR = 0.125 -> gross 0.13; 50% of 0.13 = 0.065 -> 0.07, whereas
    # 50% of the unrounded 0.125 would give 0.06 and the figures would not add up.
    result = compute_entitlement(cash("0.25", "EUR"), Decimal("0.5"), Decimal(50))
    assert result is not None
    assert result.gross is not None and result.tax is not None and result.net is not None
    assert (result.gross.amount, result.tax.amount, result.net.amount) == (
        Decimal("0.13"),
        Decimal("0.07"),
        Decimal("0.06"),
    )


def test_huge_holdings_lose_no_digits() -> None:
    quantity, rate = "9" * 39, "9" * 35 + ".99"
    result = compute_entitlement(cash(rate, "USD"), Decimal(quantity), Decimal("13.0001"))
    assert result is not None and result.gross is not None and result.tax is not None
    assert Fraction(result.gross.amount) == Fraction(quantity) * Fraction(rate)
    assert len(result.gross.amount.as_tuple().digits) == 76
    assert Fraction(result.tax.amount) == model_round(
        Fraction(result.gross.amount) * Fraction("13.0001") / 100, 2
    )


@pytest.mark.parametrize(
    "event_type", [e for e in EventType if e not in CASH_EVENTS | SECURITY_EVENTS]
)
def test_no_entitlement_for_other_events(event_type: EventType) -> None:
    informational = terms(event_type, Money(Decimal(1), "RUB"), Ratio(1, 1))
    assert compute_entitlement(informational, Decimal(100), Decimal(13)) is None


def test_no_entitlement_without_the_rate_or_ratio() -> None:
    assert compute_entitlement(terms(EventType.DVCA), Decimal(1), Decimal(13)) is None
    assert compute_entitlement(terms(EventType.SPLF), Decimal(1), Decimal(13)) is None


@pytest.mark.parametrize(("quantity", "tax_rate"), [("-1", "13"), ("1", "-0.1"), ("1", "100.01")])
def test_out_of_range_inputs_are_programming_errors(quantity: str, tax_rate: str) -> None:
    with pytest.raises(ValueError):
        compute_entitlement(cash("1"), Decimal(quantity), Decimal(tax_rate))


def test_a_currency_without_minor_unit_is_refused() -> None:
    with pytest.raises(ValueError):
        compute_entitlement(cash("1", "XAU"), Decimal(1), Decimal(13))


# -- an independent model ----------------------------------------------------------


def model_round(value: Fraction, places: int) -> Fraction:
    """Half-up for non-negative values, by integer arithmetic: add half a unit, floor."""
    unit = Fraction(1, 10**places)
    return ((value + unit / 2) // unit) * unit


@st.composite
def decimals(draw: st.DrawFn, max_places: int, max_units: int) -> Decimal:
    places = draw(st.integers(0, max_places))
    return Decimal(draw(st.integers(0, max_units))).scaleb(-places)


quantities = decimals(max_places=6, max_units=10**15)
tax_rates = st.builds(
    lambda units, places: (
        Decimal(units).scaleb(-places) if units <= 100 * 10**places else Decimal(100)
    ),
    st.integers(0, 10**6),
    st.integers(0, 4),
)


@st.composite
def cash_terms(draw: st.DrawFn) -> CorporateActionTerms:
    currency = draw(st.sampled_from(CURRENCIES))
    minor_unit = currency_minor_unit(currency)
    assert minor_unit is not None
    places = draw(st.integers(0, minor_unit))
    units = draw(st.integers(1, 10**12))
    event_type = draw(st.sampled_from(sorted(CASH_EVENTS)))
    return terms(event_type, gross_rate=Money(Decimal(units).scaleb(-places), currency))


@given(cash_terms(), quantities, tax_rates)
def test_cash_entitlement_matches_the_fraction_model(
    action: CorporateActionTerms, quantity: Decimal, tax_rate: Decimal
) -> None:
    assert action.gross_rate is not None
    currency = action.gross_rate.currency
    minor_unit = currency_minor_unit(currency)
    assert minor_unit is not None

    gross = model_round(Fraction(quantity) * Fraction(action.gross_rate.amount), minor_unit)
    tax = model_round(gross * Fraction(tax_rate) / 100, minor_unit)

    result = compute_entitlement(action, quantity, tax_rate)
    assert result is not None
    assert result.gross is not None and result.tax is not None and result.net is not None
    assert Fraction(result.gross.amount) == gross
    assert Fraction(result.tax.amount) == tax
    assert Fraction(result.net.amount) == gross - tax
    assert result.gross.amount == result.net.amount + result.tax.amount
    assert Decimal(0) <= result.tax.amount <= result.gross.amount
    assert {result.gross.currency, result.tax.currency, result.net.currency} == {currency}
    for money in (result.gross, result.tax, result.net):
        assert decimal_places(money.amount) == minor_unit


@given(
    st.sampled_from(sorted(SECURITY_EVENTS)),
    quantities,
    st.integers(1, 2**31 - 1),
    st.integers(1, 2**31 - 1),
    tax_rates,
)
def test_securities_match_the_fraction_model(
    event_type: EventType, quantity: Decimal, numerator: int, denominator: int, tax_rate: Decimal
) -> None:
    result = compute_entitlement(
        terms(event_type, ratio=Ratio(numerator, denominator)), quantity, tax_rate
    )
    assert result is not None and result.securities is not None and result.fraction is not None
    exact = Fraction(quantity) * numerator / denominator
    assert result.securities <= exact < result.securities + 1
    left_over = exact - result.securities
    step = Fraction(1, 10**FRACTION_PLACES)
    assert Fraction(result.fraction) <= left_over < Fraction(result.fraction) + step
    assert (result.gross, result.tax, result.net) == (None, None, None)


# -- issue 11: rates per security (kind 10), exact whole numbers (kind 4) ------------


def test_a_rate_finer_than_the_minor_unit_is_used_whole() -> None:
    # 1000 x 0.00110609 = 1.10609 -> 1.11 RUB; tax 13 % of 1.11 = 0.1443 -> 0.14; net 0.97
    result = compute_entitlement(cash("0.00110609", "RUB"), Decimal(1000), Decimal(13))
    assert result is not None
    assert (result.gross, result.tax, result.net) == (
        Money(Decimal("1.11"), "RUB"),
        Money(Decimal("0.14"), "RUB"),
        Money(Decimal("0.97"), "RUB"),
    )


def test_a_rate_with_trailing_zeros_pays_the_same() -> None:
    spelled = compute_entitlement(cash("1.2300", "USD"), Decimal(7), Decimal(15))
    assert spelled == compute_entitlement(cash("1.23", "USD"), Decimal(7), Decimal(15))


def test_a_split_of_a_huge_holding_is_exact() -> None:
    # 1 500 000 000 shares, 2-for-1: 3 000 000 000 new shares, past GraphQL's Int.
    result = compute_entitlement(split(2, 1), Decimal(1_500_000_000), Decimal(0))
    assert result is not None and result.securities == 3_000_000_000


def minor_units_reference(
    quantity: str, rate: str, tax_percent: str, minor_unit: int
) -> tuple[int, int, int]:
    """Gross, tax and net in the currency's minor units, by integer arithmetic
    only — the contract's order, each rounding half-up (n >= 0):
    gross = round(qty x rate); tax = round(gross x tax% / 100); net = gross - tax.
    """

    def scaled(text: str) -> tuple[int, int]:
        whole, _, part = text.partition(".")
        return int(whole + part), 10 ** len(part)

    def div_half_up(numerator: int, denominator: int) -> int:
        return (2 * numerator + denominator) // (2 * denominator)

    q, q_scale = scaled(quantity)
    r, r_scale = scaled(rate)
    t, t_scale = scaled(tax_percent)
    gross = div_half_up(q * r * 10**minor_unit, q_scale * r_scale)
    tax = div_half_up(gross * t, 100 * t_scale)
    return gross, tax, gross - tax


def digits(max_units: int, max_places: int) -> st.SearchStrategy[str]:
    """Plain decimal strings, trailing zeros and all ("1.2300")."""
    return st.builds(
        lambda units, places: (
            str(units) if places == 0 else f"{units // 10**places}.{units % 10**places:0{places}d}"
        ),
        st.integers(0, max_units),
        st.integers(0, max_places),
    )


@given(
    st.sampled_from(CURRENCIES),
    digits(10**15, 6),
    digits(10**13, 10).filter(lambda text: Decimal(text) > 0),
    digits(100 * 10**4, 4).filter(lambda text: Decimal(text) <= 100),
)
def test_cash_arithmetic_matches_an_integer_reference(
    currency: str, quantity: str, rate: str, tax_percent: str
) -> None:
    minor_unit = currency_minor_unit(currency)
    assert minor_unit is not None
    result = compute_entitlement(cash(rate, currency), Decimal(quantity), Decimal(tax_percent))
    assert result is not None
    assert result.gross is not None and result.tax is not None and result.net is not None
    in_minor_units = [
        Fraction(money.amount) * 10**minor_unit for money in (result.gross, result.tax, result.net)
    ]
    assert all(units.denominator == 1 for units in in_minor_units)
    expected = minor_units_reference(quantity, rate, tax_percent, minor_unit)
    assert tuple(units.numerator for units in in_minor_units) == expected
    for money in (result.gross, result.tax, result.net):
        assert decimal_places(money.amount) == minor_unit

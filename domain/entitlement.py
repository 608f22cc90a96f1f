"""What a holding at the record date entitles a depositor to."""

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Final

from domain.codes import CASH_EVENTS, SECURITY_EVENTS
from domain.identifiers import currency_minor_unit
from domain.money import EXACT, round_half_up
from domain.terms import CorporateActionTerms, Money

__all__ = ["FRACTION_PLACES", "Entitlement", "compute_entitlement"]

# The fraction of a security left over is information for cash in lieu, not
# an amount paid: it is truncated (never rounded up to a whole) to this many
# decimals. Ratios like 1/3 would otherwise never end.
FRACTION_PLACES: Final = 9


@dataclass(frozen=True)
class Entitlement:
    """Cash fields for cash events, security fields for security events; the
    others are None."""

    gross: Money | None
    tax: Money | None
    net: Money | None
    securities: int | None
    fraction: Decimal | None


def compute_entitlement(
    terms: CorporateActionTerms, quantity: Decimal, tax_rate_percent: Decimal
) -> Entitlement | None:
    """The entitlement of `quantity` securities held at the record date.

    Cash events (CASH_EVENTS). The gross rate is a rate per security and may
    carry more decimals than the currency's minor unit (0.00110609 RUB per
    share); only the computed figures are rounded, each half-up to the
    currency's minor unit (domain.money.round_half_up, our policy), in the
    contract's order:

        gross = round(quantity x grossRate)
        tax   = round(gross x taxRatePercent / 100)   -- from the ROUNDED gross
        net   = gross - tax                            -- exact, no rounding

    Tax is taken from the rounded gross because that is the amount actually
    paid out and shown; it makes the three figures add up exactly
    (gross = net + tax) and lets a depositor re-check the tax from the gross.

    Security events (SECURITY_EVENTS): securities = floor(quantity x
    numerator / denominator); fraction = what is left, in [0, 1), truncated
    to FRACTION_PLACES decimals (105 held, 3-for-2 -> 157 and 0.5).

    None for other events (MEET, OTHR, TEND…) and when the rate or ratio the
    computation needs is absent. Raises ValueError for a negative quantity,
    a tax rate outside 0..100 or a currency without a minor unit.
    """
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    if not 0 <= tax_rate_percent <= 100:
        raise ValueError("tax rate must be between 0 and 100 percent")

    if terms.event_type in CASH_EVENTS and terms.gross_rate is not None:
        rate = terms.gross_rate
        minor_unit = currency_minor_unit(rate.currency)
        if minor_unit is None:
            raise ValueError(f"{rate.currency} has no minor unit")
        with localcontext(EXACT):
            gross = round_half_up(quantity * rate.amount, minor_unit)
            tax = round_half_up(gross * tax_rate_percent / 100, minor_unit)
            net = gross - tax
        return Entitlement(
            gross=Money(gross, rate.currency),
            tax=Money(tax, rate.currency),
            net=Money(net, rate.currency),
            securities=None,
            fraction=None,
        )

    if terms.event_type in SECURITY_EVENTS and terms.ratio is not None:
        # Fractions keep every digit whatever the ratio; Decimal could not hold 1/3.
        total = Fraction(quantity) * terms.ratio.numerator / terms.ratio.denominator
        securities = math.floor(total)
        left_over = total - securities
        scaled = left_over.numerator * 10**FRACTION_PLACES // left_over.denominator
        return Entitlement(
            gross=None,
            tax=None,
            net=None,
            securities=securities,
            fraction=Decimal(scaled).scaleb(-FRACTION_PLACES).normalize(),
        )

    return None

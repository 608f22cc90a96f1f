"""The terms of a corporate action: the value objects one version carries.

These are plain frozen values with no checks of their own: `domain.validation`
is the only way in from the outside world, so every instance built there obeys
the rules documented in that module.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from domain.codes import EventType, MandatoryVoluntary, OptionKind


@dataclass(frozen=True)
class Money:
    """An amount in an ISO 4217 currency; never a float. As a corporate
    action's gross rate it is a rate per security, which may carry more
    decimals than the currency's minor unit (up to 10)."""

    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Ratio:
    """New securities per old ones: a 3-for-2 split is 3/2 (kept as given, not reduced)."""

    numerator: int
    denominator: int


@dataclass(frozen=True)
class ElectionOption:
    """One numbered option block (ISO 15022 CAON/CAOP, 17B DFLT)."""

    number: int
    kind: OptionKind
    is_default: bool


@dataclass(frozen=True)
class CorporateActionTerms:
    """What an announcement or amendment says about an event.

    Dates that a preliminary notice leaves unknown (UKWN) are None.
    `response_deadline` is timezone-aware and normalised to UTC; `options`
    are sorted by number so that equal terms compare equal whatever order
    the caller listed them in.
    """

    reference: str
    event_type: EventType
    mandatory_voluntary: MandatoryVoluntary
    isin: str
    security_name: str | None
    announcement_date: date
    ex_date: date | None
    record_date: date
    payment_date: date | None
    response_deadline: datetime | None
    gross_rate: Money | None
    ratio: Ratio | None
    options: tuple[ElectionOption, ...]

"""GraphQL input types and their translation into command payloads.

Payloads use the contract's field names, which are also the names the domain
reports problems under, so a field path in an error names the input field.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

import strawberry

import queries.types  # noqa: F401  (registers the GraphQL enums)
from domain.codes import CorporateActionStatus, EventType, MandatoryVoluntary, OptionKind
from domain.validation import FIELD_NAMES


@strawberry.input
class MoneyInput:
    amount: str = strawberry.field(
        description='A decimal string, e.g. "12.35"; a gross rate per security may '
        'carry up to 10 decimals ("0.00110609").'
    )
    currency: str


@strawberry.input
class RatioInput:
    numerator: int
    denominator: int


@strawberry.input
class OptionInput:
    number: int
    kind: OptionKind
    is_default: bool


@strawberry.input
class AnnounceCorporateActionInput:
    reference: str = strawberry.field(description="The official (market) CA reference; unique.")
    event_type: EventType
    mandatory_voluntary: MandatoryVoluntary
    isin: str
    security_name: str | None = None
    announcement_date: date
    ex_date: date | None = None
    record_date: date
    payment_date: date | None = None
    response_deadline: datetime | None = None
    gross_rate: MoneyInput | None = None
    ratio: RatioInput | None = None
    options: list[OptionInput] | None = None


@strawberry.input(description="Fields left out stay as they are; an explicit null clears one.")
class AmendCorporateActionInput:
    id: strawberry.ID
    expected_version: int
    reference: str | None = strawberry.UNSET
    event_type: EventType | None = strawberry.UNSET
    mandatory_voluntary: MandatoryVoluntary | None = strawberry.UNSET
    isin: str | None = strawberry.UNSET
    security_name: str | None = strawberry.UNSET
    announcement_date: date | None = strawberry.UNSET
    ex_date: date | None = strawberry.UNSET
    record_date: date | None = strawberry.UNSET
    payment_date: date | None = strawberry.UNSET
    response_deadline: datetime | None = strawberry.UNSET
    gross_rate: MoneyInput | None = strawberry.UNSET
    ratio: RatioInput | None = strawberry.UNSET
    options: list[OptionInput] | None = strawberry.UNSET


@strawberry.input
class CancelCorporateActionInput:
    id: strawberry.ID
    expected_version: int
    reason: str


@strawberry.input
class ApprovePublicationInput:
    id: strawberry.ID
    version: int


@strawberry.input
class PositionInput:
    account_id: strawberry.ID
    quantity: str = strawberry.field(description="Decimal string, ≥ 0 and < 10^15.")
    tax_rate_percent: str = strawberry.field(description='Withholding rate, e.g. "13".')


@strawberry.input
class RecordPositionsInput:
    isin: str
    as_of: date
    positions: list[PositionInput]


@strawberry.input
class CorporateActionFilter:
    isin: str | None = None
    event_types: list[EventType] | None = None
    statuses: list[CorporateActionStatus] | None = None
    record_date_from: date | None = None
    record_date_to: date | None = None


def _plain(value: Any) -> Any:
    """GraphQL input values -> JSON-compatible payload values."""
    if value is None:
        return None
    if isinstance(value, MoneyInput):
        return {"amount": value.amount, "currency": value.currency}
    if isinstance(value, RatioInput):
        return {"numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, OptionInput):
        return {"number": value.number, "kind": value.kind.value, "isDefault": value.is_default}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def terms_payload(data: AnnounceCorporateActionInput | AmendCorporateActionInput) -> dict[str, Any]:
    """The fields the caller gave (UNSET ones left out), under contract names."""
    payload: dict[str, Any] = {}
    for attribute, name in FIELD_NAMES.items():
        value = getattr(data, attribute)
        if value is strawberry.UNSET:
            continue
        if isinstance(data, AnnounceCorporateActionInput) and value is None:
            continue
        payload[name] = _plain(value)
    return payload


def positions_payload(data: RecordPositionsInput) -> dict[str, Any]:
    return {
        "isin": data.isin,
        "asOf": data.as_of.isoformat(),
        "positions": [
            {
                "accountId": str(p.account_id),
                "quantity": p.quantity,
                "taxRatePercent": p.tax_rate_percent,
            }
            for p in data.positions
        ],
    }

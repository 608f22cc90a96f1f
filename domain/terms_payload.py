"""Corporate-action terms as their JSON-compatible payload, and back.

The payload is keyed by the GraphQL input field names (camelCase): what a
command carries, what the event stores and what views read. `terms_to_payload`
is the one serializer (the inverse of domain.validation.parse_terms);
`changed_fields` the one diff.
"""

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, date
from typing import Final

from domain.money import canonical_string
from domain.terms import CorporateActionTerms

__all__ = ["FIELD_NAMES", "changed_fields", "terms_to_payload"]

# Terms attribute -> payload field, in the contract's order.
FIELD_NAMES: Final[Mapping[str, str]] = {
    "reference": "reference",
    "event_type": "eventType",
    "mandatory_voluntary": "mandatoryVoluntary",
    "isin": "isin",
    "security_name": "securityName",
    "announcement_date": "announcementDate",
    "ex_date": "exDate",
    "record_date": "recordDate",
    "payment_date": "paymentDate",
    "response_deadline": "responseDeadline",
    "gross_rate": "grossRate",
    "ratio": "ratio",
    "options": "options",
}


def terms_to_payload(terms: CorporateActionTerms) -> dict[str, object]:
    """The canonical JSON-compatible payload of `terms` (inverse of parse_terms).

    Every field is present; absent optional values are None, the rate is a
    plain decimal string in canonical form (no exponent, no trailing zeros),
    the deadline is UTC with "Z".
    """
    gross_rate = terms.gross_rate
    ratio = terms.ratio
    deadline = terms.response_deadline
    return {
        "reference": terms.reference,
        "eventType": terms.event_type.value,
        "mandatoryVoluntary": terms.mandatory_voluntary.value,
        "isin": terms.isin,
        "securityName": terms.security_name,
        "announcementDate": terms.announcement_date.isoformat(),
        "exDate": _iso_date(terms.ex_date),
        "recordDate": terms.record_date.isoformat(),
        "paymentDate": _iso_date(terms.payment_date),
        "responseDeadline": (
            None
            if deadline is None
            else deadline.astimezone(UTC).isoformat().replace("+00:00", "Z")
        ),
        "grossRate": (
            None
            if gross_rate is None
            else {
                "amount": canonical_string(gross_rate.amount),
                "currency": gross_rate.currency,
            }
        ),
        "ratio": (
            None
            if ratio is None
            else {"numerator": ratio.numerator, "denominator": ratio.denominator}
        ),
        "options": [
            {"number": o.number, "kind": o.kind.value, "isDefault": o.is_default}
            for o in terms.options
        ],
    }


def _iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def changed_fields(old: CorporateActionTerms, new: CorporateActionTerms) -> tuple[str, ...]:
    """Payload names of the fields whose values differ, sorted.

    Values compare as values: an amount of 1.5 and one of 1.50 are the same.
    """
    return tuple(
        sorted(
            FIELD_NAMES[f.name]
            for f in fields(CorporateActionTerms)
            if getattr(old, f.name) != getattr(new, f.name)
        )
    )

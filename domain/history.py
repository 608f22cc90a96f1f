"""Decoding recorded history: what was accepted once is read back as it was.

Stored terms passed the rules of the day they were recorded. Rules tighten
(an ISIN prefix check, a direction rule for splits); a stored announcement
must still be readable, projectable and amendable afterwards, so it is decoded
here — shapes and types only — and never re-validated against today's rules
(`domain.validation.parse_terms` is for input arriving now).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from domain.codes import EventType, MandatoryVoluntary, OptionKind
from domain.terms import CorporateActionTerms, ElectionOption, Money, Ratio


class UndecodableHistory(ValueError):
    """A stored payload does not even have the shape of terms (a bug or a
    damaged record, not a rule that changed)."""


def decode_terms(payload: Mapping[str, Any]) -> CorporateActionTerms:
    """The terms a stored payload (`terms_to_payload`'s shape) records.

    Raises UndecodableHistory when a field is missing or of the wrong type.
    """
    try:
        gross_rate = payload.get("grossRate")
        ratio = payload.get("ratio")
        deadline = payload.get("responseDeadline")
        options = payload.get("options") or ()
        return CorporateActionTerms(
            reference=str(payload["reference"]),
            event_type=EventType(payload["eventType"]),
            mandatory_voluntary=MandatoryVoluntary(payload["mandatoryVoluntary"]),
            isin=str(payload["isin"]),
            security_name=_optional_text(payload.get("securityName")),
            announcement_date=date.fromisoformat(payload["announcementDate"]),
            ex_date=_optional_date(payload.get("exDate")),
            record_date=date.fromisoformat(payload["recordDate"]),
            payment_date=_optional_date(payload.get("paymentDate")),
            response_deadline=(None if deadline is None else datetime.fromisoformat(str(deadline))),
            gross_rate=(
                None
                if gross_rate is None
                else Money(Decimal(str(gross_rate["amount"])), str(gross_rate["currency"]))
            ),
            ratio=(
                None if ratio is None else Ratio(int(ratio["numerator"]), int(ratio["denominator"]))
            ),
            options=tuple(
                sorted(
                    (
                        ElectionOption(
                            int(o["number"]), OptionKind(o["kind"]), bool(o["isDefault"])
                        )
                        for o in options
                    ),
                    key=lambda option: option.number,
                )
            ),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise UndecodableHistory(f"stored terms do not decode: {exc!r}") from exc


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_date(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)

"""Read models -> GraphQL types: which version of a card a viewer sees, and
a depositor's notice.

The public sees only the last published version; back-office viewers see the
published version or, before the first publication, the draft. Depositors see
a notice's corporate action as the public does.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import strawberry

from domain.corporate_action import KIND_CANCELLATION, ActionVersion, CorporateAction
from domain.identifiers import currency_minor_unit
from domain.money import canonical_string, format_amount, format_rate
from domain.ports import StoredNotice
from domain.terms import Money
from queries import types as t


def visible_version(state: CorporateAction, back_office: bool) -> ActionVersion | None:
    if state.published is not None:
        return state.published
    return state.versions[-1] if back_office else None


def _money(data: Mapping[str, Any] | None) -> t.Money | None:
    """An amount paid (a notice's entitlement: decimal string and currency),
    rounded to the currency's minor unit."""
    if not data:
        return None
    return _formatted(Decimal(str(data["amount"])), str(data["currency"]), rate=False)


def _rate(money: Money | None) -> t.Money | None:
    """A rate per security, exact with at least the currency's minor-unit decimals."""
    return None if money is None else _formatted(money.amount, money.currency, rate=True)


def _formatted(amount: Decimal, currency: str, *, rate: bool) -> t.Money:
    minor = currency_minor_unit(currency)
    if minor is None:
        text = canonical_string(amount)
    else:
        text = format_rate(amount, minor) if rate else format_amount(amount, minor)
    return t.Money(amount=text, currency=currency)


def card(state: CorporateAction, shown: ActionVersion, *, back_office: bool) -> t.CorporateAction:
    """The GraphQL card for `state` showing version `shown` (a cancellation
    version repeats the terms it cancels)."""
    terms = shown.terms
    ratio = terms.ratio
    cancellation = shown.reason if shown.kind == KIND_CANCELLATION else None
    return t.CorporateAction(
        id=strawberry.ID(state.id),
        reference=terms.reference,
        event_type=terms.event_type,
        mandatory_voluntary=terms.mandatory_voluntary,
        status=state.status,
        version=shown.number,
        pending_version=state.pending_version if back_office else None,
        security=t.Security(isin=terms.isin, name=terms.security_name),
        announcement_date=terms.announcement_date,
        ex_date=terms.ex_date,
        record_date=terms.record_date,
        payment_date=terms.payment_date,
        response_deadline=terms.response_deadline,
        gross_rate=_rate(terms.gross_rate),
        ratio=None
        if ratio is None
        else t.Ratio(numerator=ratio.numerator, denominator=ratio.denominator),
        options=[
            t.ElectionOption(number=o.number, kind=o.kind, is_default=o.is_default)
            for o in terms.options
        ],
        published_at=state.published_at,
        cancellation_reason=cancellation,
        _history=[
            t.HistoryEntry(
                version=h.version, event_type=h.event_name, occurred_at=h.occurred_at, actor=h.actor
            )
            for h in state.history
        ],
    )


def public_card(state: CorporateAction) -> t.CorporateAction | None:
    """The card as the public sees it; None before the first publication."""
    shown = visible_version(state, back_office=False)
    return None if shown is None else card(state, shown, back_office=False)


def depositor_notice(notice: StoredNotice) -> t.DepositorNotice:
    """The GraphQL notice for a notice of the read model."""
    content = notice.content
    return t.DepositorNotice(
        id=strawberry.ID(notice.notice_id),
        account_id=strawberry.ID(notice.account_id),
        kind=notice.kind,
        version=notice.version,
        changed_fields=list(notice.changed_fields),
        eligible_quantity=str(content["eligibleQuantity"]),
        entitlement=_entitlement(content.get("entitlement")),
        issued_at=notice.issued_at,
        acknowledged_at=notice.acknowledged_at,
        _corporate_action_id=notice.corporate_action_id,
    )


def _entitlement(data: Mapping[str, Any] | None) -> t.Entitlement | None:
    if data is None:
        return None
    securities = data.get("securities")
    fraction = data.get("fraction")
    return t.Entitlement(
        gross=_money(data.get("gross")),
        tax=_money(data.get("tax")),
        net=_money(data.get("net")),
        securities=None if securities is None else t.BigInt(int(securities)),
        fraction=None if fraction is None else str(fraction),
    )

"""What a notice says in a message: a title and a plain-text body, shared by
the e-mail and push channels (the SWIFT renderings are domain/swift and
adapters/channels/iso20022.py)."""

from __future__ import annotations

from typing import Any

from domain.codes import NoticeKind
from domain.delivery import IssuedNotice

_KIND = {
    NoticeKind.NEW: "New notice",
    NoticeKind.UPDATE: "Updated notice",
    NoticeKind.CANCELLATION: "Cancelled",
}


def title(notice: IssuedNotice) -> str:
    """E.g. "RU-DVCA-2026-0001: New notice (DVCA)"."""
    event_type = notice.content.get("eventType") or ""
    return f"{notice.reference}: {_KIND[notice.kind]} ({event_type})".replace(" ()", "")


def _money(value: Any) -> str:
    return "—" if not value else f"{value['amount']} {value['currency']}"


def lines(notice: IssuedNotice) -> list[str]:
    """The notice as label/value lines: the action, the holding, the entitlement."""
    c = notice.content
    out = [
        f"Corporate action: {notice.reference} ({c.get('eventType', '')})",
        f"Security: {c.get('isin', '')} {c.get('securityName') or ''}".rstrip(),
        f"Account: {notice.account_id}",
        f"Record date: {c.get('recordDate', '')}",
    ]
    if c.get("paymentDate"):
        out.append(f"Payment date: {c['paymentDate']}")
    if notice.kind is NoticeKind.CANCELLATION:
        out.append("This corporate action was cancelled: the notice no longer applies.")
        return out
    out.append(f"Eligible quantity: {c.get('eligibleQuantity', '')}")
    entitlement = c.get("entitlement")
    if entitlement:
        out += [
            f"Entitlement gross: {_money(entitlement.get('gross'))}",
            f"Tax: {_money(entitlement.get('tax'))}",
            f"Entitlement net: {_money(entitlement.get('net'))}",
        ]
        if entitlement.get("securities") is not None:
            out.append(f"New securities: {entitlement['securities']}")
    if notice.changed_fields:
        out.append(f"Changed: {', '.join(notice.changed_fields)}")
    return out


def body(notice: IssuedNotice) -> str:
    return "\n".join(lines(notice))

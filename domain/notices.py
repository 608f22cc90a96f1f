"""Depositor notices, derived as a pure function of the record.

For one corporate action, the record gives a timeline: each publication
(an approved version, possibly a cancellation) and each positions snapshot of
the securities and dates its published versions name, ordered by their global
sequence. Walking that timeline decides, for every account, which notices were
issued: NEW when a published version and a holding at its record date are both
known (in either order), UPDATE only when what that depositor sees changed
(`changed_fields` says what), CANCELLATION to everyone who held a live notice
when the action is cancelled or when a corrected snapshot drops them.

Because the walk depends only on the record — never on the order in which
Kafka delivered the events — replaying the log rebuilds identical notices, and
re-running it after a crash or a duplicate delivery issues nothing new.
Accounts are independent, so callers walk them in chunks (bounded memory).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from domain.codes import NoticeKind
from domain.entitlement import compute_entitlement
from domain.identifiers import currency_minor_unit
from domain.money import canonical_string, format_amount
from domain.terms import CorporateActionTerms, Money

# What a depositor's notice shows of the corporate action itself.
ACTION_FIELDS = (
    "reference",
    "eventType",
    "isin",
    "securityName",
    "recordDate",
    "paymentDate",
    "responseDeadline",
)


@dataclass(frozen=True)
class Publication:
    """A version of the corporate action that was approved (published)."""

    sequence: int
    occurred_at: datetime
    ca_version: int
    terms: CorporateActionTerms
    cancelled: bool


@dataclass(frozen=True)
class SnapshotRecorded:
    """A positions snapshot of one security at one date (a later one replaces it)."""

    sequence: int
    occurred_at: datetime
    isin: str
    as_of: date
    snapshot_id: str


Step = Publication | SnapshotRecorded


@dataclass(frozen=True)
class Holding:
    quantity: Decimal
    tax_rate_percent: Decimal


@dataclass(frozen=True)
class Effective:
    """What the notices of the action follow after one step of the timeline."""

    at: datetime
    publication: Publication
    snapshot_id: str | None
    action_content: Mapping[str, Any]


@dataclass(frozen=True)
class NoticeState:
    account_id: str
    version: int
    kind: NoticeKind
    changed_fields: tuple[str, ...]
    ca_version: int
    content: Mapping[str, Any]
    content_hash: str
    issued_at: datetime


def plan(steps: Iterable[Step]) -> list[Effective]:
    """The action-level states the notices pass through, oldest first.

    A step that changes neither the published version nor the snapshot that
    version's security and record date point at yields nothing.
    """
    publication: Publication | None = None
    latest: dict[tuple[str, date], SnapshotRecorded] = {}
    effective: list[Effective] = []
    seen: tuple[int, int | None] | None = None
    for step in sorted(steps, key=lambda s: s.sequence):
        if isinstance(step, Publication):
            publication = step
        else:
            latest[(step.isin, step.as_of)] = step
        if publication is None:
            continue
        terms = publication.terms
        snapshot = latest.get((terms.isin, terms.record_date))
        key = (publication.sequence, None if snapshot is None else snapshot.sequence)
        if key == seen:
            continue
        seen = key
        effective.append(
            Effective(
                at=step.occurred_at,
                publication=publication,
                snapshot_id=None if snapshot is None else snapshot.snapshot_id,
                action_content=action_content(terms),
            )
        )
    return effective


def snapshot_ids(effective: Sequence[Effective]) -> list[str]:
    """The snapshots the plan reads, each once, in first-use order."""
    ids = [e.snapshot_id for e in effective if e.snapshot_id is not None]
    return list(dict.fromkeys(ids))


def derive(
    effective: Sequence[Effective],
    accounts: Iterable[str],
    holdings: Mapping[str, Mapping[str, Holding]],
) -> dict[str, NoticeState]:
    """The final notice of each of `accounts` (absent: never notified).

    `holdings[snapshot_id][account]` must hold every one of `accounts` that
    the snapshot lists; accounts absent from it hold nothing.
    """
    notices: dict[str, NoticeState] = {}
    for account in accounts:
        notice: NoticeState | None = None
        for state in effective:
            notice = _step(notice, account, state, holdings)
        if notice is not None:
            notices[account] = notice
    return notices


def _step(
    notice: NoticeState | None,
    account: str,
    state: Effective,
    holdings: Mapping[str, Mapping[str, Holding]],
) -> NoticeState | None:
    publication = state.publication
    live = notice is not None and notice.kind is not NoticeKind.CANCELLATION
    if publication.cancelled:
        if notice is not None and live:
            return _reissue(notice, state, NoticeKind.CANCELLATION, ())
        return notice
    if state.snapshot_id is None:
        return notice  # no positions known for this version's date yet
    holding = holdings.get(state.snapshot_id, {}).get(account)
    if holding is None or holding.quantity <= 0:
        if notice is not None and live:
            return _reissue(notice, state, NoticeKind.CANCELLATION, ())
        return notice
    content = {**state.action_content, **holding_content(publication.terms, holding)}
    digest = content_hash(content)
    if notice is None:
        return NoticeState(
            account, 1, NoticeKind.NEW, (), publication.ca_version, content, digest, state.at
        )
    if not live:
        return NoticeState(
            account,
            notice.version + 1,
            NoticeKind.NEW,
            (),
            publication.ca_version,
            content,
            digest,
            state.at,
        )
    if notice.content_hash == digest:
        return notice  # nothing this depositor sees changed: issue nothing
    changed = tuple(sorted(k for k in content if content.get(k) != notice.content.get(k)))
    return replace(
        _reissue(notice, state, NoticeKind.UPDATE, changed), content=content, content_hash=digest
    )


def _reissue(
    notice: NoticeState, state: Effective, kind: NoticeKind, changed: tuple[str, ...]
) -> NoticeState:
    return replace(
        notice,
        version=notice.version + 1,
        kind=kind,
        changed_fields=changed,
        ca_version=state.publication.ca_version,
        issued_at=state.at,
    )


def action_content(terms: CorporateActionTerms) -> dict[str, Any]:
    return {
        "reference": terms.reference,
        "eventType": terms.event_type.value,
        "isin": terms.isin,
        "securityName": terms.security_name,
        "recordDate": terms.record_date.isoformat(),
        "paymentDate": None if terms.payment_date is None else terms.payment_date.isoformat(),
        "responseDeadline": (
            None if terms.response_deadline is None else terms.response_deadline.isoformat()
        ),
    }


def _money(money: Money | None) -> dict[str, str] | None:
    if money is None:
        return None
    minor = currency_minor_unit(money.currency)
    amount = canonical_string(money.amount) if minor is None else format_amount(money.amount, minor)
    return {"amount": amount, "currency": money.currency}


def holding_content(terms: CorporateActionTerms, holding: Holding) -> dict[str, Any]:
    """What a depositor sees of their holding, every value in canonical text:
    the quantity without trailing zeros ("40.000" is "40"), amounts with
    exactly their currency's minor unit, new securities as a decimal string
    (exact at any size, and beyond the store's 8-byte integers)."""
    entitlement = compute_entitlement(terms, holding.quantity, holding.tax_rate_percent)
    return {
        "eligibleQuantity": canonical_string(holding.quantity),
        "entitlement": None
        if entitlement is None
        else {
            "gross": _money(entitlement.gross),
            "tax": _money(entitlement.tax),
            "net": _money(entitlement.net),
            "securities": None if entitlement.securities is None else str(entitlement.securities),
            "fraction": None
            if entitlement.fraction is None
            else canonical_string(entitlement.fraction),
        },
    }


def content_hash(content: Mapping[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def notice_id(corporate_action_id: str, account_id: str) -> str:
    """Stable, so a rebuild gives every notice the same id; opaque to its reader."""
    digest = hashlib.sha256(f"{corporate_action_id}|{account_id}".encode()).hexdigest()
    return "NT" + digest[:30]

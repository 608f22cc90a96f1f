"""Builders the API and notices suites share: read-model documents and
events exactly as the projectors and command handlers store them."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.notice_projection import STATS_OF, stats_id
from commands.ids import new_action_id, new_event_id
from domain import corporate_action as ca
from domain import events as ev
from domain import notices as nt
from domain.codes import NoticeKind
from domain.events import EventEnvelope
from domain.ports import NoticeRecord
from domain.validation import parse_terms, terms_to_payload
from tests.support import DIVIDEND, RunningHerald

T0 = datetime(2026, 12, 16, 9, 0, tzinfo=UTC)

_ids = itertools.count()


def bare_event(aggregate_id: str, version: int, aggregate_type: str = "test") -> EventEnvelope:
    """A bare event of an aggregate's stream (payload: its version), for the
    event log's suites."""
    return EventEnvelope(
        event_id=uuid.uuid4().hex,
        event_name="Tested",
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        version=version,
        occurred_at=datetime(2026, 11, 30, tzinfo=UTC),
        actor="olga",
        correlation_id="c",
        payload={"n": version},
    )


def notice_record(
    account: str,
    action_id: str,
    version: int = 1,
    *,
    issued_at: datetime = T0,
    content_hash: str | None = None,
) -> NoticeRecord:
    """A notice as the notices projector hands it to its store (NEW at version
    1, else an UPDATE of the gross rate)."""
    notice = nt.NoticeState(
        account_id=account,
        version=version,
        kind=NoticeKind.NEW if version == 1 else NoticeKind.UPDATE,
        changed_fields=() if version == 1 else ("grossRate",),
        ca_version=version,
        content={"eligibleQuantity": "100"},
        content_hash=content_hash or f"h{version}",
        issued_at=issued_at,
    )
    return NoticeRecord(nt.notice_id(action_id, account), action_id, notice)


def notice_doc(
    account: str,
    action_id: str,
    issued_at: datetime = T0,
    *,
    notice_id: str | None = None,
    version: int = 1,
    kind: str = "NEW",
    changed: Sequence[str] = (),
    acknowledged_at: datetime | None = None,
    securities: bool = False,
) -> dict[str, Any]:
    """A notice as the notices projector stores it."""
    if securities:
        entitlement: dict[str, Any] = {
            "gross": None,
            "tax": None,
            "net": None,
            "securities": "3",
            "fraction": "0.5",
        }
    else:
        entitlement = {
            "gross": {"amount": "3330.00", "currency": "RUB"},
            "tax": {"amount": "432.90", "currency": "RUB"},
            "net": {"amount": "2897.10", "currency": "RUB"},
            "securities": None,
            "fraction": None,
        }
    return {
        "_id": notice_id or f"NT{uuid.uuid4().hex[:24]}{next(_ids):06x}",
        "corporateActionId": action_id,
        "accountId": account,
        "version": version,
        "kind": kind,
        "changedFields": list(changed),
        "caVersion": version,
        "content": {
            "reference": DIVIDEND["reference"],
            "eventType": "DVCA",
            "isin": DIVIDEND["isin"],
            "securityName": DIVIDEND["securityName"],
            "recordDate": DIVIDEND["recordDate"],
            "paymentDate": DIVIDEND["paymentDate"],
            "responseDeadline": None,
            "eligibleQuantity": "100",
            "entitlement": entitlement,
        },
        "contentHash": uuid.uuid4().hex,
        "issuedAt": issued_at,
        "acknowledgedAt": acknowledged_at,
        "deliveredAt": None,
    }


async def insert_notices(herald: RunningHerald, docs: Sequence[dict[str, Any]]) -> None:
    """Store notices as the projector does, with its per-action counts. (Some
    suites store several notices of one account and action, which the
    projector never does, to exercise paging; so they are inserted as given.)"""
    if not docs:
        return
    notices = herald.services.db["notices"]
    await notices.insert_many(list(docs))
    for action_id in {d["corporateActionId"] for d in docs}:
        mine = [d for d in docs if d["corporateActionId"] == action_id]
        counts = {
            "total": len(mine),
            "delivered": sum(d.get("deliveredAt") is not None for d in mine),
            "acknowledged": sum(d.get("acknowledgedAt") is not None for d in mine),
        }
        await notices.update_one(
            {"_id": stats_id(action_id)},
            {"$inc": counts, "$set": {STATS_OF: action_id}},
            upsert=True,
        )


def envelope(action_id: str, version: int, decided: ev.NewEvent, actor: str) -> ev.EventEnvelope:
    return ev.EventEnvelope(
        event_id=new_event_id(),
        event_name=decided.event_name,
        aggregate_type=ev.AGGREGATE_CORPORATE_ACTION,
        aggregate_id=action_id,
        version=version,
        occurred_at=T0,
        actor=actor,
        correlation_id="test",
        payload=decided.payload,
    )


def announcement(n: int) -> ev.EventEnvelope:
    """Version 1 of a new dividend announced by olga (no reference reserved):
    the record a restart test or benchmark starts from."""
    terms = {**DIVIDEND, "reference": f"RU-SEED-{uuid.uuid4().hex[:10]}-{n}"}
    return envelope(new_action_id(), 1, ca.announce(terms_to_payload(parse_terms(terms))), "olga")


async def seed_announcements(events: MongoEventStore, count: int, batch: int = 500) -> None:
    """Store `count` announcements, `batch` per append (one transaction each)."""
    for start in range(0, count, batch):
        await events.append([announcement(n) for n in range(start, min(start + batch, count))])

"""MemoryDeliveryLog: the DeliveryLog port in memory (tests, and the
reference the contract suite holds the MongoDB adapter to)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from domain.delivery import (
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    IssuedNotice,
    OutboundNotice,
    Outcome,
    delivery_id,
)
from domain.preferences import DeliveryChannel

__all__ = ["MemoryDeliveryLog"]

_OPEN = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


@dataclasses.dataclass
class _Entry:
    delivery: Delivery
    notice: IssuedNotice
    due_at: datetime
    leased_until: datetime


class MemoryDeliveryLog:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def _update(self, key: str, **changes: object) -> None:
        entry = self._entries[key]
        entry.delivery = dataclasses.replace(entry.delivery, **changes)  # type: ignore[arg-type]

    async def plan(self, outbound: Sequence[OutboundNotice], now: datetime) -> int:
        new = 0
        for o in outbound:
            key = delivery_id(o.notice.notice_id, o.notice.version, o.channel)
            if key in self._entries:
                continue
            delivery = Delivery(
                key=key,
                notice_id=o.notice.notice_id,
                version=o.notice.version,
                channel=o.channel,
                account_id=o.notice.account_id,
                address=o.address,
                message_id=o.message_id,
                status=DeliveryStatus.PENDING,
                attempts=0,
                issued_at=o.notice.issued_at,
                planned_at=now,
                trace_context=dict(o.trace_context),
            )
            self._entries[key] = _Entry(delivery, o.notice, now, now)
            new += 1
        return new

    async def earlier_channels(
        self, versions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[DeliveryChannel, str]]:
        found: dict[tuple[str, int], dict[DeliveryChannel, str]] = {}
        for notice_id, version in versions:
            earlier = sorted(
                (
                    e.delivery
                    for e in self._entries.values()
                    if e.delivery.notice_id == notice_id
                    and e.delivery.version < version
                    and e.delivery.status is not DeliveryStatus.DEAD_LETTERED
                ),
                key=lambda d: d.version,
            )
            found[notice_id, version] = {d.channel: d.address for d in earlier}
        return found

    async def due(self, channel: DeliveryChannel, now: datetime, limit: int) -> list[str]:
        due = sorted(
            (e.due_at, key)
            for key, e in self._entries.items()
            if e.delivery.channel is channel
            and e.delivery.status in _OPEN
            and e.due_at <= now
            and e.leased_until <= now
        )
        return [key for _, key in due[:limit]]

    async def claim(
        self, keys: Sequence[str], now: datetime, lease: timedelta
    ) -> list[ClaimedDelivery]:
        claimed: list[ClaimedDelivery] = []
        for key in dict.fromkeys(keys):
            entry = self._entries.get(key)
            if entry is None or entry.delivery.status not in _OPEN:
                continue
            if entry.due_at > now or entry.leased_until > now:
                continue
            entry.leased_until = now + lease
            self._update(key, attempts=entry.delivery.attempts + 1)
            claimed.append(ClaimedDelivery(entry.delivery, entry.notice))
        return claimed

    async def record(self, outcomes: Sequence[Outcome]) -> set[str]:
        delivered: set[str] = set()
        for outcome in outcomes:
            entry = self._entries.get(outcome.key)
            if entry is None:
                continue
            status = entry.delivery.status
            if outcome.status is DeliveryStatus.DELIVERED:
                delivered.add(outcome.key)
                if status is not DeliveryStatus.DELIVERED:
                    entry.leased_until = outcome.at
                    self._update(
                        outcome.key,
                        status=DeliveryStatus.DELIVERED,
                        delivered_at=outcome.at,
                        last_error=None,
                    )
            elif outcome.status is DeliveryStatus.PENDING:  # not an attempt
                entry.leased_until = outcome.at
                entry.due_at = outcome.retry_at or outcome.at
                self._update(outcome.key, attempts=entry.delivery.attempts - 1)
            elif status in _OPEN:
                entry.leased_until = outcome.at
                entry.due_at = outcome.retry_at or outcome.at
                self._update(
                    outcome.key, status=outcome.status, last_error=(outcome.error or "")[:1000]
                )
        return delivered

    async def unsettled(self, limit: int) -> list[tuple[str, int]]:
        versions = [
            (e.delivery.notice_id, e.delivery.version)
            for e in self._entries.values()
            if e.delivery.status is DeliveryStatus.DELIVERED and not e.delivery.settled
        ]
        return list(dict.fromkeys(versions))[:limit]

    async def settle(self, keys: Sequence[str]) -> None:
        for key in keys:
            if key in self._entries:
                self._update(key, settled=True)

    async def of_version(self, notice_id: str, version: int) -> list[Delivery]:
        return (await self.of_notices([(notice_id, version)]))[notice_id, version]

    async def of_notices(
        self, versions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Delivery]]:
        found: dict[tuple[str, int], list[Delivery]] = {v: [] for v in versions}
        for entry in sorted(self._entries.values(), key=lambda e: e.delivery.channel.value):
            key = (entry.delivery.notice_id, entry.delivery.version)
            if key in found:
                found[key].append(entry.delivery)
        return found

    async def dead_letters(self, channel: DeliveryChannel | None = None) -> list[Delivery]:
        dead = [
            e.delivery
            for e in self._entries.values()
            if e.delivery.status is DeliveryStatus.DEAD_LETTERED
            and (channel is None or e.delivery.channel is channel)
        ]
        return sorted(dead, key=lambda d: (d.channel.value, d.key))

    async def requeue(self, key: str, address: str | None, now: datetime) -> bool:
        entry = self._entries.get(key)
        if entry is None or entry.delivery.status is not DeliveryStatus.DEAD_LETTERED:
            return False
        entry.due_at = entry.leased_until = now
        self._update(
            key,
            status=DeliveryStatus.PENDING,
            attempts=0,
            settled=False,
            address=address or entry.delivery.address,
        )
        return True

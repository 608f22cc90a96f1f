"""MemoryNoticeStore: the NoticeReadStore and NoticeDeliveryMarks ports in
memory. `put` stands in for the notices projector (it stores a notice as the
projector would)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from domain.ports import StoredNotice

__all__ = ["MemoryNoticeStore"]


def _newest_first(notice: StoredNotice) -> tuple[datetime, str]:
    return notice["issuedAt"], str(notice["_id"])


class MemoryNoticeStore:
    def __init__(self) -> None:
        self._notices: dict[str, StoredNotice] = {}

    def put(self, notice: StoredNotice) -> None:
        self._notices[str(notice["_id"])] = dict(notice)

    async def mark_delivered(self, versions: Sequence[tuple[str, int]], at: datetime) -> int:
        marked = 0
        for notice_id, version in dict.fromkeys(versions):
            notice = self._notices.get(notice_id)
            if notice is None or notice["version"] != version:
                continue
            if notice.get("deliveredAt") is None:
                self._notices[notice_id] = {**notice, "deliveredAt": at}
                marked += 1
        return marked

    def _of(self, accounts: Collection[str], unread_only: bool) -> list[StoredNotice]:
        return [
            n
            for n in self._notices.values()
            if n["accountId"] in accounts
            and not (unread_only and n.get("acknowledgedAt") is not None)
        ]

    async def page_for_accounts(
        self,
        accounts: Collection[str],
        first: int,
        after: tuple[datetime, str] | None,
        unread_only: bool,
    ) -> tuple[list[StoredNotice], bool]:
        found = sorted(self._of(accounts, unread_only), key=_newest_first, reverse=True)
        if after is not None:
            found = [n for n in found if _newest_first(n) < after]
        return found[:first], len(found) > first

    async def count_for_accounts(self, accounts: Collection[str], unread_only: bool) -> int:
        return len(self._of(accounts, unread_only))

    async def get_for_accounts(
        self, notice_id: str, accounts: Collection[str]
    ) -> StoredNotice | None:
        notice = self._notices.get(notice_id)
        return notice if notice is not None and notice["accountId"] in accounts else None

    async def by_action(self, action_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        counts: dict[str, tuple[int, int, int]] = {}
        for n in self._notices.values():
            action = n["corporateActionId"]
            if action in action_ids:
                total, delivered, acknowledged = counts.get(action, (0, 0, 0))
                counts[action] = (
                    total + 1,
                    delivered + (n.get("deliveredAt") is not None),
                    acknowledged + (n.get("acknowledgedAt") is not None),
                )
        return counts

    async def page_for_action(
        self, action_id: str, first: int, after: str | None
    ) -> tuple[list[StoredNotice], bool]:
        found = sorted(
            (n for n in self._notices.values() if n["corporateActionId"] == action_id),
            key=lambda n: str(n["accountId"]),
        )
        if after is not None:
            found = [n for n in found if str(n["accountId"]) > after]
        return found[:first], len(found) > first

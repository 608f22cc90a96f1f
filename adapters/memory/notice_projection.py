"""MemoryNoticeProjectionStore: the NoticeProjectionStore port in memory, with
the Mongo adapter's guards (a notice is written only when absent or at a
newer version; an acknowledgement only of the stored, unacknowledged version).

`notices` holds what was written, by notice id, for tests to read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime

from domain.ports import NoticePlan, NoticeRecord, StoredIssue

__all__ = ["MemoryNoticeProjectionStore"]


class MemoryNoticeProjectionStore:
    def __init__(self) -> None:
        self.notices: dict[str, NoticeRecord] = {}
        self._subscriptions: set[tuple[str, str, str]] = set()  # (isin, as of, action id)

    async def subscribe(self, action_id: str, pairs: Iterable[tuple[str, date]]) -> None:
        self._subscriptions.update((isin, d.isoformat(), action_id) for isin, d in pairs)

    async def subscribers(self, isin: str, as_of: str) -> list[str]:
        return sorted(a for i, d, a in self._subscriptions if (i, d) == (isin, as_of))

    async def reconcile_range(self, action_id: str, first: str, last: str, plan: NoticePlan) -> int:
        stored = {
            n.account_id: n
            for n in self.notices.values()
            if n.corporate_action_id == action_id and first <= n.account_id <= last
        }
        issues = {
            account: StoredIssue(n.version, n.notice.content_hash, n.acknowledged_at)
            for account, n in stored.items()
        }
        written = 0
        for notice in plan(issues):
            previous = stored.get(notice.account_id)
            if previous is None or previous.version < notice.version:
                self.notices[notice.notice_id] = notice
                written += 1
        return written

    async def acknowledge(self, notice_id: str, version: int, at: datetime) -> bool:
        notice = self.notices.get(notice_id)
        if notice is None or notice.version != version or notice.acknowledged_at is not None:
            return False
        self.notices[notice_id] = replace(notice, acknowledged_at=at)
        return True

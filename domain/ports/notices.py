"""The notices read model: as the notices projector writes it, and as
depositors and operators read it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from domain.notices import NoticeState


@dataclass(frozen=True)
class StoredIssue:
    """What the read model holds of one account's notice, as a reconcile plan
    reads it: the issue stored (version, content hash) and its acknowledgement."""

    version: int
    content_hash: str
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class NoticeRecord:
    """One notice as the notices projector writes it: the latest issue
    (`notice`) of one account's notice of one corporate action.
    `acknowledged_at` is kept from the stored notice of the same issue; when
    every chosen channel delivered the issue is the store's own record."""

    notice_id: str
    corporate_action_id: str
    notice: NoticeState
    acknowledged_at: datetime | None = None

    @property
    def account_id(self) -> str:
        return self.notice.account_id

    @property
    def version(self) -> int:
        return self.notice.version


# Of one range of accounts: the notices to write, given what is stored of them
# (by account id). Pure: it may run more than once (a transaction started over).
NoticePlan = Callable[[Mapping[str, StoredIssue]], Sequence[NoticeRecord]]


class NoticeProjectionStore(Protocol):
    """The notices read model as the notices projector writes it, and which
    corporate actions follow which (ISIN, record date). Writes are guarded by
    the notice version: a stale or repeated write never replaces a newer
    notice, and the per-action counts move with the notices. Raises
    StoreError when the store fails."""

    async def subscribe(self, action_id: str, pairs: Iterable[tuple[str, date]]) -> None:
        """Remember that the action follows the positions of these (ISIN, record date)s."""
        ...

    async def subscribers(self, isin: str, as_of: str) -> list[str]:
        """The actions following the positions of `isin` on `as_of` (YYYY-MM-DD)."""
        ...

    async def reconcile_range(self, action_id: str, first: str, last: str, plan: NoticePlan) -> int:
        """Atomically: read what is stored of the action's notices of accounts
        `first`..`last` (inclusive), ask `plan` for the notices to write, write
        each that is absent or newer than the stored one (and its NoticeIssued
        event, where the store records them). Returns how many were written."""
        ...

    async def acknowledge(self, notice_id: str, version: int, at: datetime) -> bool:
        """Mark `version` of the notice acknowledged at `at`, only while it is
        still the stored version and unacknowledged; True when it was marked."""
        ...


# A notice as the notices projector stores it: its id, corporateActionId,
# accountId, version, kind, content, issuedAt, acknowledgedAt, deliveredAt…
StoredNotice = Mapping[str, Any]


class NoticeReadStore(Protocol):
    """The notices read model as the API reads it. Every depositor read takes
    the caller's accounts and applies them in the store's query (invariant 5):
    a notice of another account is never fetched."""

    async def page_for_accounts(
        self,
        accounts: Collection[str],
        first: int,
        after: tuple[datetime, str] | None,
        unread_only: bool,
    ) -> tuple[Sequence[StoredNotice], bool]:
        """Up to `first` notices of `accounts`, newest first (issuedAt, then id),
        strictly after the (issuedAt, id) cursor; and whether more follow."""
        ...

    async def count_for_accounts(self, accounts: Collection[str], unread_only: bool) -> int: ...

    async def get_for_accounts(
        self, notice_id: str, accounts: Collection[str]
    ) -> StoredNotice | None:
        """The notice if one of `accounts` holds it, else None (indistinguishable)."""
        ...

    async def by_action(self, action_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(total, delivered, acknowledged) notices per corporate action that has any."""
        ...

    async def page_for_action(
        self, action_id: str, first: int, after: str | None
    ) -> tuple[Sequence[StoredNotice], bool]:
        """Operators: up to `first` notices of one action in account order,
        after the account `after`; and whether more follow."""
        ...

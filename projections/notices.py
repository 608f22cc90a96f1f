"""The notices projector: every holder at the record date gets a notice.

Triggers: an approved publication of a corporate action, or a positions
snapshot of a security and date that published actions follow. For each
affected action it reads the action's timeline from the event record and
derives the notices with `domain.notices` — a pure function of the record,
so redeliveries, crashes mid-fan-out and full replays converge on identical
documents. Accounts are processed in chunks with bulk writes, so 100 000
holders never sit in memory at once; progress is exported as metrics and,
for the read side, noted per action in the projection state after each chunk
(`projections { fanoutAccountsRemaining }`: `lag` does not count the work of
the event being applied).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import date
from functools import partial

from domain import corporate_action as ca
from domain import events as ev
from domain import notices as nt
from domain.consistency import NOTICES_PROJECTION
from domain.ports import (
    EventStore,
    FanoutProgress,
    NoticeProjectionStore,
    NoticeRecord,
    PositionSnapshotReader,
    StoredIssue,
)
from domain.positions import positions_aggregate_id
from observability import metrics, trace_context

log = logging.getLogger(__name__)

NAME = NOTICES_PROJECTION
# A chunk's accounts (sorted) and their holdings per snapshot id.
Holders = tuple[list[str], dict[str, dict[str, nt.Holding]]]
CHUNK = 5000


class NoticeProjector:
    name = NAME

    def __init__(
        self,
        notices: NoticeProjectionStore,
        positions: PositionSnapshotReader,
        events: EventStore,
        topics: Sequence[str],
        *,
        chunk: int = CHUNK,
        progress: FanoutProgress | None = None,
    ) -> None:
        """`progress`: where each fan-out's accounts still to process are
        noted for the read side (None: nowhere, e.g. a rebuild's)."""
        self._notices = notices
        self._progress = progress
        self._positions = positions
        self._events = events
        self._chunk = chunk
        self.topics = topics

    async def apply(self, events: Sequence[ev.EventEnvelope]) -> None:
        # each affected action, with the (latest) event that affects it
        affected: dict[str, ev.EventEnvelope] = {}
        acknowledgements: list[ev.EventEnvelope] = []
        for event in events:
            if event.event_name == ev.NOTICE_ACKNOWLEDGED:
                acknowledgements.append(event)
            elif event.event_name == ev.PUBLICATION_APPROVED:
                affected[event.aggregate_id] = event
            elif event.event_name == ev.POSITIONS_RECORDED:
                isin, as_of = str(event.payload["isin"]), str(event.payload["asOf"])
                for action_id in await self._notices.subscribers(isin, as_of):
                    affected[action_id] = event
        for action_id, cause in affected.items():
            # in the trace of the event that caused it: the notices written and
            # the NoticeIssued events recorded with them continue that trace
            with trace_context.continued(cause.trace_context):
                await self.reconcile(action_id)
        # After the notices of this batch exist: an ack only applies to its issue.
        for event in acknowledgements:
            await self._notices.acknowledge(
                str(event.payload["noticeId"]),
                int(event.payload["noticeVersion"]),
                event.occurred_at,
            )

    async def reconcile(self, action_id: str) -> int:
        """Bring the notices of one corporate action in line with the record."""
        publications = await self._publications(action_id)
        if not publications:
            return 0
        pairs = {(p.terms.isin, p.terms.record_date) for p in publications}
        # Subscribe before reading snapshots: a snapshot recorded meanwhile is
        # then either read below or finds this action when its event arrives.
        await self._notices.subscribe(action_id, pairs)
        steps: list[nt.Step] = list(publications)
        sizes: dict[str, int] = {}  # accounts per snapshot id, as its event says
        for isin, as_of in sorted(pairs):
            steps += await self._snapshots(isin, as_of, sizes)
        effective = nt.plan(steps)
        snapshot_ids = nt.snapshot_ids(effective)
        written = 0
        remaining = metrics.FANOUT_REMAINING.labels(NAME)
        marks, total = await self._chunk_marks(snapshot_ids, sizes)
        remaining.inc(total)
        left = total
        # (no holder yet, e.g. approved before the positions: no range at all)
        ranges = list(zip(marks, [*marks[1:], None], strict=True)) if marks else []

        def read(index: int) -> asyncio.Task[Holders]:
            first, before = ranges[index]
            return asyncio.ensure_future(self._positions.between(snapshot_ids, first, before))

        # The next chunk's positions are read while this chunk's transaction
        # runs (two chunks in memory at most): the store works on both.
        upcoming = read(0) if ranges else None
        try:
            if total:  # while the first chunk is read
                await self._note_progress(action_id, left)
            for index in range(len(ranges)):
                assert upcoming is not None
                chunk, holdings = await upcoming
                upcoming = read(index + 1) if index + 1 < len(ranges) else None
                if not chunk:
                    continue
                derived = nt.derive(effective, chunk, holdings)
                written += await self._notices.reconcile_range(
                    action_id, chunk[0], chunk[-1], partial(_to_store, action_id, derived)
                )
                remaining.dec(len(chunk))
                left -= len(chunk)
                if left > 0:
                    await self._note_progress(action_id, left)
            if total:  # over; a failed fan-out keeps its note until it runs again
                await self._note_progress(action_id, 0)
        finally:
            if upcoming is not None and not upcoming.done():
                upcoming.cancel()  # a failed chunk: the read ahead is not wanted
                await asyncio.gather(upcoming, return_exceptions=True)
            remaining.set(0)
        metrics.NOTICES_WRITTEN.inc(written)
        return written

    async def _note_progress(self, action_id: str, left: int) -> None:
        """Note `left` accounts to go in `action_id`'s fan-out. Only a note:
        a store that fails it is logged, and the fan-out goes on (the chunks
        say soon enough whether the store is failing)."""
        if self._progress is None:
            return
        try:
            await self._progress.report_fanout(NAME, action_id, left)
        except Exception as exc:
            log.warning("cannot note the %s fan-out progress of %s: %s", NAME, action_id, exc)

    async def _publications(self, action_id: str) -> list[nt.Publication]:
        state: ca.CorporateAction | None = None
        publications: list[nt.Publication] = []
        for event in await self._events.load(action_id):
            state = ca.apply(state, event)
            if event.event_name != ev.PUBLICATION_APPROVED:
                continue
            published = state.published
            assert published is not None
            publications.append(
                nt.Publication(
                    sequence=event.sequence,
                    occurred_at=event.occurred_at,
                    ca_version=published.number,
                    terms=published.terms,  # history: decoded, never re-validated
                    cancelled=published.kind == ca.KIND_CANCELLATION,
                )
            )
        return publications

    async def _chunk_marks(
        self, snapshot_ids: Sequence[str], sizes: Mapping[str, int]
    ) -> tuple[list[str], int]:
        """The first account of each chunk and the number of positions.

        Chunk boundaries come from one pass over the index, then bounded range
        reads: never a list of account ids sent to the store, never all ids in
        memory. One snapshot no larger than a chunk (its size as its event
        recorded it) is one range from the start, without that pass — a
        store round trip before the first notice of most fan-outs."""
        if len(snapshot_ids) == 1:
            size = sizes.get(snapshot_ids[0])
            if size is not None and size <= self._chunk:
                return ([""] if size else []), size
        return await self._positions.boundaries(snapshot_ids, self._chunk)

    async def _snapshots(
        self, isin: str, as_of: date, sizes: dict[str, int]
    ) -> list[nt.SnapshotRecorded]:
        """The snapshots recorded for (isin, as_of); notes in `sizes` the
        accounts of each whose event says (`accounts`, in events since it was
        added)."""
        aggregate_id = positions_aggregate_id(isin, as_of.isoformat())
        recorded: list[nt.SnapshotRecorded] = []
        for event in await self._events.load(aggregate_id):
            if event.event_name != ev.POSITIONS_RECORDED:
                continue
            snapshot_id = str(event.payload["snapshotId"])
            if isinstance(accounts := event.payload.get("accounts"), int):
                sizes[snapshot_id] = accounts
            recorded.append(
                nt.SnapshotRecorded(
                    sequence=event.sequence,
                    occurred_at=event.occurred_at,
                    isin=isin,
                    as_of=as_of,
                    snapshot_id=snapshot_id,
                )
            )
        return recorded


def _to_store(
    action_id: str, derived: Mapping[str, nt.NoticeState], stored: Mapping[str, StoredIssue]
) -> list[NoticeRecord]:
    """The derived notices that are not stored as they are."""
    return [
        _record(action_id, notice, stored.get(account))
        for account, notice in derived.items()
        if _differs(notice, stored.get(account))
    ]


def _differs(notice: nt.NoticeState, stored: StoredIssue | None) -> bool:
    return (
        stored is None
        or stored.version != notice.version
        or stored.content_hash != notice.content_hash
    )


def _record(action_id: str, notice: nt.NoticeState, stored: StoredIssue | None) -> NoticeRecord:
    acknowledged = None
    if stored is not None and stored.version == notice.version:
        acknowledged = stored.acknowledged_at  # same issue: keep the depositor's ack
    return NoticeRecord(nt.notice_id(action_id, notice.account_id), action_id, notice, acknowledged)

"""Applied-through checkpoints: a restart costs what is new (issue 12, item 6).

The event log may be lost while the record is not: Tansu, the embedded
default's broker, keeps its log in memory. A start that has to create the
topics used to publish the whole record again, and every projector consumed
all of history before a new write became readable (547 s at 50 000 events).

Design: each projection remembers the global sequence S through which it has
applied every event of its streams (`projection_checkpoints`). On a start
against an empty log the relay re-publishes only the events past the lowest
S of all projections (`Services._prepare_topics`); older events are in every
read model already, so the projectors catch up with what is new.

Why re-publish rather than apply from the store: every event still reaches a
projector through one path, the Kafka partition of its aggregate, in the
order the relay publishes it (sequence order, which is version order within
one aggregate) — invariant 4 (idempotent, ordered per aggregate) holds as
it always did, with one consumer-group member per aggregate at a time even
when several `herald worker`s share a projection. A re-published event a
projection already applied is absorbed by its version guards.

How S advances: the projectors' per-aggregate tracking (`projection_tracking`,
written after each batch's read-model change, what consistency tokens wait
on) already tells which events are applied. `AppliedThrough.advance` walks
the record in sequence order from the current S and stops at the first event
of the projection's streams whose version the tracking does not cover; S
only grows (`$max`), so it is never ahead of a read model.

Appends in flight: a sequence is allocated (an atomic `$inc` on the counter)
before its event is inserted, so while a higher sequence is stored and
applied, a lower one may still be on its way — and would be missed if S
passed it. A process also reserves blocks of sequences and hands them out to
later appends for a short while (adapters/mongo/event_store.py: at most
`HERALD_SEQUENCE_BLOCK_SECONDS`, 2 s, and never more than a tenth of the
horizon), so a sequence may be stored up to that long after the counter
passed it, below sequences other processes stored meanwhile. S therefore
passes only sequences it has seen stored: while the stored sequences run on
without a gap, each one's append is over, and S follows the projection at
once (within a second, from the first start). A gap is an append that failed
after its allocation (a version conflict, a resumed command's ids already
stored, a notice transaction rerun, a counter increment retried by the
driver), the unused rest of a block (dropped when it expires or is replaced),
or an append still in flight or a block still in use; they cannot be told
apart, so S passes a gap only once the counter stood past it
`horizon_seconds` ago (60 s by default, well past a block's lifetime plus an
append's socket timeout and retry): a sequence allocated before that is
stored or never will be. Gaps are no longer rare — each expired block leaves
one, and several processes' blocks interleave — so while commands arrive S
often stands at a gap, up to `horizon_seconds` behind the projection; that
only makes a start against an empty log re-publish the last minute or so
again, which the projectors absorb by their version guards.

Consistency tokens survive all of this unchanged: a token names an
aggregate's stream version (domain/consistency.py), not a Kafka offset, and
read-your-writes waits on the per-aggregate tracking in the store — no
offset of the lost log is ever compared with the new one. A token issued
before the restart is met at once if its event was applied, and otherwise
its event lies past the lowest S, so it is re-published and applied.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)

HORIZON_SECONDS = 60.0
PAGE = 1_000


class EventHead(Protocol):
    """Where one recorded event stands."""

    @property
    def sequence(self) -> int: ...
    @property
    def aggregate_type(self) -> str: ...
    @property
    def aggregate_id(self) -> str: ...
    @property
    def version(self) -> int: ...


class SequencedRecord(Protocol):
    """The event record in global sequence order (adapters.mongo.event_store)."""

    async def last_sequence(self) -> int:
        """The highest sequence allocated so far (0: none)."""
        ...

    async def heads(
        self, after_sequence: int, through_sequence: int, limit: int
    ) -> Sequence[EventHead]:
        """The stored events in (after, through], in sequence order."""
        ...


class AppliedState(Protocol):
    """What a projection applied (adapters.mongo.projection_state)."""

    async def applied_versions(
        self, projection: str, aggregate_ids: Iterable[str]
    ) -> dict[str, int]: ...

    async def applied_through(self, projection: str) -> int: ...

    async def advance_applied_through(self, projection: str, sequence: int) -> None: ...


class AppliedThrough:
    """Advances one projection's applied-through checkpoint."""

    def __init__(
        self,
        projection: str,
        streams: Collection[str],
        events: SequencedRecord,
        state: AppliedState,
        *,
        horizon_seconds: float = HORIZON_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.projection = projection
        self._streams = frozenset(streams)
        self._events = events
        self._state = state
        self._horizon = horizon_seconds
        self._clock = clock
        # (when, sequence counter) samples, oldest first
        self._samples: deque[tuple[float, int]] = deque()

    async def _counter(self) -> tuple[int, int | None]:
        """(the counter now, the counter as it stood `horizon_seconds` ago —
        every sequence at or below it is stored or never will be; None until
        this checkpoint has watched it that long)."""
        now = self._clock()
        top = await self._events.last_sequence()
        self._samples.append((now, top))
        settled: int | None = None
        while self._samples and now - self._samples[0][0] >= self._horizon:
            settled = self._samples.popleft()[1]
        if settled is not None:  # still the newest settled value next time
            self._samples.appendleft((now - self._horizon, settled))
        return top, settled

    async def advance(self, limit: int = 20 * PAGE) -> int:
        """Walk at most `limit` events past the checkpoint and raise it through
        those applied, up to the first gap not yet settled; returns the
        checkpoint (a global sequence)."""
        top, settled = await self._counter()
        through = await self._state.applied_through(self.projection)
        start, walked = through, 0

        def past_gap(before: int) -> bool:
            """Move `through` over the unstored sequences up to `before`, as far
            as they are settled; True when all of them are."""
            nonlocal through
            if before <= through:
                return True
            if settled is not None and settled > through:
                through = min(settled, before)
            return through == before

        # Standing at a gap not settled yet (the usual case while blocks of
        # sequences are in use): one key tells, not a page of heads.
        unsettled = settled is None or settled <= through
        if through < top and unsettled and not await self._events.heads(through, through + 1, 1):
            return through
        while walked < limit and through < top:
            heads = await self._events.heads(through, top, PAGE)
            if not heads:  # (through, top]: nothing stored yet
                past_gap(top)
                break
            walked += len(heads)
            # only the heads before the first gap not settled can be passed:
            # their tracking alone is read
            passable = _before_unsettled_gap(heads, through, settled)
            ours = [head for head in passable if head.aggregate_type in self._streams]
            applied = await self._state.applied_versions(
                self.projection, (head.aggregate_id for head in ours)
            )
            stopped = False
            for head in heads:
                if not past_gap(head.sequence - 1):
                    stopped = True
                    break
                if head.aggregate_type in self._streams and (
                    applied.get(head.aggregate_id, 0) < head.version
                ):
                    stopped = True
                    break
                through = head.sequence
            if stopped:
                break
        if through > start:
            await self._state.advance_applied_through(self.projection, through)
        return through


def _before_unsettled_gap(
    heads: Sequence[EventHead], after: int, settled: int | None
) -> Sequence[EventHead]:
    """The first of `heads` (stored events past `after`, in sequence order)
    up to the first one behind a gap of unstored sequences not all settled."""
    previous = after
    for index, head in enumerate(heads):
        gap_end = head.sequence - 1
        if gap_end > previous and (settled is None or settled < gap_end):
            return heads[:index]
        previous = head.sequence
    return heads


async def replay_from(state: AppliedState, projections: Collection[str]) -> int:
    """The lowest applied-through checkpoint of `projections`: every event at
    or below it is in every read model (0: replay everything)."""
    marks = [await state.applied_through(name) for name in projections]
    return min(marks, default=0)

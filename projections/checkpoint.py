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
only grows (`$max`), so it is never ahead of a read model. One subtlety: a
sequence is allocated before its event is inserted, so an event with a lower
sequence may still be in flight while a higher one is stored and applied.
S therefore never passes the sequence counter as it stood `horizon_seconds`
ago (60 s by default, well past an append's socket timeout and retry): an
append allocated before that has committed or failed by now.

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
    def aggregate_id(self) -> str: ...
    @property
    def version(self) -> int: ...


class SequencedRecord(Protocol):
    """The event record in global sequence order (adapters.mongo.event_store)."""

    async def last_sequence(self) -> int:
        """The highest sequence allocated so far (0: none)."""
        ...

    async def heads(
        self, after_sequence: int, through_sequence: int, aggregate_types: Sequence[str], limit: int
    ) -> Sequence[EventHead]:
        """The events in (after, through] of those streams, in sequence order."""
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
        self._streams = sorted(streams)
        self._events = events
        self._state = state
        self._horizon = horizon_seconds
        self._clock = clock
        # (when, sequence counter) samples, oldest first
        self._samples: deque[tuple[float, int]] = deque()

    async def _settled_sequence(self) -> int | None:
        """The counter as it stood `horizon_seconds` ago: every event at or
        below it is stored (or never will be). None until known."""
        now = self._clock()
        self._samples.append((now, await self._events.last_sequence()))
        settled: int | None = None
        while self._samples and now - self._samples[0][0] >= self._horizon:
            settled = self._samples.popleft()[1]
        if settled is not None:  # still the newest settled value next time
            self._samples.appendleft((now - self._horizon, settled))
        return settled

    async def advance(self, limit: int = 20 * PAGE) -> int:
        """Walk at most `limit` events past the checkpoint and raise it through
        those applied; returns the checkpoint (a global sequence)."""
        settled = await self._settled_sequence()
        through = await self._state.applied_through(self.projection)
        if settled is None or settled <= through:
            return through
        start, walked = through, 0
        while walked < limit:
            heads = await self._events.heads(through, settled, self._streams, PAGE)
            if not heads:  # nothing of ours left up to the settled point
                through = settled
                break
            walked += len(heads)
            applied = await self._state.applied_versions(
                self.projection, (head.aggregate_id for head in heads)
            )
            behind = next((h for h in heads if applied.get(h.aggregate_id, 0) < h.version), None)
            if behind is not None:
                through = behind.sequence - 1
                break
            through = heads[-1].sequence
        if through > start:
            await self._state.advance_applied_through(self.projection, through)
        return through


async def replay_from(state: AppliedState, projections: Collection[str]) -> int:
    """The lowest applied-through checkpoint of `projections`: every event at
    or below it is in every read model (0: replay everything)."""
    marks = [await state.applied_through(name) for name in projections]
    return min(marks, default=0)

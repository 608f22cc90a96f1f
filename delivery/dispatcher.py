"""The dispatcher's planner: issued notice versions in, a delivery plan out.

How issued versions reach it (DESIGN.md invariant 6). The notices projector
writes, in the same MongoDB transaction as the notice versions it stores,
`NoticeIssued` events into the outbox (adapters.mongo.notice_projection), each
naming up to 250 versions of one action (`domain.delivery.notices_issued_event`;
a schema-1 event names one); an event's id is derived from its (notice,
version) pairs, so a rerun writes nothing new, and every (notice, version,
channel) is planned once whichever event names it. The relay publishes them to
the `notice-issues` topic like any event, and the planner consumes that topic
in its own consumer group (`<prefix>.dispatcher`) through the same
ProjectionRunner as the projectors: offsets are committed only after the
plan of the batch is stored. A crash anywhere therefore either leaves the
version unissued (the notice was not stored either) or redelivers
it from the log — no path skips a version.

For each version the planner reads the account's preferences in force at
issue time: the latest set at or before the global sequence of the version's
`NoticeIssued` event (the preferences store keeps each account's recent
changes with their sequences), so a change made after the issue, even one
projected before the plan, does not redirect it. A change made before the
issue but not yet projected when the planner runs is waited for: the planner
reads, in the event record, the last version of each account's preferences
stream stored before the issue, and plans only once the preferences
projection has applied it (PreferencesBehind, a transient error the runner
retries and readiness shows, after `preferences_wait_seconds`). It picks the channels with
`domain.delivery.plan_channels` and records one delivery per channel in the
delivery log (the DeliveryLog port) before anything goes
out; the channel workers (delivery/worker.py) drain it. A version with no
outbound channel counts as delivered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

from domain import events as ev
from domain.codes import NoticeKind
from domain.consistency import PREFERENCES_PROJECTION
from domain.delivery import (
    IssuedNotice,
    OutboundNotice,
    delivered_at_issue,
    issued_versions,
    plan_channels,
)
from domain.ports import (
    Channel,
    DeliveryLog,
    EventStore,
    NoticeDeliveryMarks,
    PreferenceStore,
    ProjectionStateStore,
)
from domain.preferences import DeliveryChannel, preferences_aggregate_id
from observability import metrics

NAME = "dispatcher"
# How often the planner looks again while the preferences projection is behind.
PREFERENCES_POLL_SECONDS = 0.05


class PreferencesBehind(TimeoutError):
    """The preferences projection has not applied a change stored before a
    notice's issue: planning now could send the notice where it must not go.
    A TimeoutError, so the runner retries the batch (domain.ports.is_transient)."""


class DeliveryPlanner:
    """A Projector (projections.runner) over the `notice-issues` topic."""

    name = NAME

    def __init__(
        self,
        deliveries: DeliveryLog,
        preferences: PreferenceStore,
        notices: NoticeDeliveryMarks,
        channels: Mapping[DeliveryChannel, Channel],
        topics: Sequence[str],
        *,
        record: EventStore,
        projections: ProjectionStateStore,
        preferences_wait_seconds: float = 10.0,
        defaults: Collection[DeliveryChannel] = (),
        on_planned: Callable[[Sequence[OutboundNotice]], None] = lambda planned: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._deliveries = deliveries
        self._preferences = preferences
        self._notices = notices
        self._record = record
        self._projections = projections
        self._preferences_wait = preferences_wait_seconds
        self._channels = channels
        self._defaults = tuple(defaults)
        self._on_planned = on_planned
        self._clock = clock
        self.topics = topics

    async def apply(self, events: Sequence[ev.EventEnvelope]) -> None:
        # Each version with the global sequence of its NoticeIssued event: where
        # in the log it was issued, so the preferences in force then decide.
        # (Versions stored delivered by an issuer with no channel on: nothing
        # to plan, no store call — a fan-out's notices cost the dispatcher
        # nothing on the store it shares with the projector.)
        issued = [
            (notice, e.sequence, e.trace_context)
            for e in events
            if e.event_name == ev.NOTICE_ISSUED and not delivered_at_issue(e)
            for notice in issued_versions(e)
        ]
        if not issued:
            return
        await self._await_preferences(
            {n.account_id for n, _, _ in issued}, max(s for _, s, _ in issued)
        )
        preferences = await self._preferences.in_force({(n.account_id, s) for n, s, _ in issued})
        earlier = await self._deliveries.earlier_channels(
            [(n.notice_id, n.version) for n, _, _ in issued if n.kind is NoticeKind.CANCELLATION]
        )
        now = self._clock()
        outbound: list[OutboundNotice] = []
        nowhere: list[IssuedNotice] = []
        for notice, sequence, trace_context in issued:
            planned = plan_channels(
                notice,
                preferences.get((notice.account_id, sequence)),
                defaults=self._defaults,
                enabled=self._channels.keys(),
                earlier=earlier.get((notice.notice_id, notice.version), {}),
            )
            if not planned:
                nowhere.append(notice)
            for channel, address in planned.items():
                message_id = self._channels[channel].message_id(notice.notice_id, notice.version)
                outbound.append(
                    OutboundNotice(
                        notice, channel, address, message_id, trace_context=trace_context
                    )
                )
        new = await self._deliveries.plan(outbound, now)
        metrics.DELIVERIES_PLANNED.inc(new)
        await self._notices.mark_delivered([(n.notice_id, n.version) for n in nowhere], now)
        if outbound:
            self._on_planned(outbound)

    async def _await_preferences(self, accounts: Collection[str], issued_by: int) -> None:
        """Return once the preferences projection has applied every change of
        these accounts' preferences stored before global sequence `issued_by`
        (one indexed read when, as usual, it has). Raises PreferencesBehind
        after `preferences_wait_seconds`."""
        streams = [preferences_aggregate_id(account) for account in accounts]
        stored = await self._record.stream_heads(streams, issued_by)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._preferences_wait
        while stored:
            applied = await self._projections.applied_versions(PREFERENCES_PROJECTION, stored)
            stored = {s: v for s, v in stored.items() if applied.get(s, 0) < v}
            if not stored:
                return
            if loop.time() >= deadline:
                behind = ", ".join(sorted(stored)[:3])
                raise PreferencesBehind(
                    f"the preferences projection has not applied {len(stored)} change(s)"
                    f" stored before these notices were issued ({behind}); waiting to plan"
                )
            await asyncio.sleep(PREFERENCES_POLL_SECONDS)

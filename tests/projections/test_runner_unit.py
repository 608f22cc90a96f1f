"""ProjectionRunner on the in-memory adapters: the order of a batch's effects
(apply, record the versions, commit), poison records parked while the
partition moves on, and an outage retried on the same batch — without a
store or a broker."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.memory.consumer import MemoryEventConsumer
from adapters.memory.dead_letters import MemoryDeadLetterStore
from adapters.memory.projection_state import MemoryProjectionState
from domain.dead_letters import projection_source
from domain.events import EventEnvelope
from domain.ports import StoreUnavailable
from projections.runner import UNDECODABLE, ProjectionRunner
from tests.builders import bare_event

NAME = "unit"


class Recorder:
    """A projector that keeps what it applied; it cannot apply `poison` (a
    ValueError) and fails with StoreUnavailable `outages` times first."""

    name = NAME
    topics: Sequence[str] = ("events",)

    def __init__(self, poison: set[str] | None = None, outages: int = 0) -> None:
        self.applied: list[str] = []
        self.poison = poison or set()
        self.outages = outages

    async def apply(self, events: Sequence[EventEnvelope]) -> None:
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable("the store does not answer")
        if any(e.event_id in self.poison for e in events):
            raise ValueError("cannot apply this one")
        self.applied += [e.event_id for e in events]


class Harness:
    def __init__(self, projector: Recorder) -> None:
        self.consumer = MemoryEventConsumer()
        self.state = MemoryProjectionState()
        self.letters = MemoryDeadLetterStore()
        self.runner = ProjectionRunner(
            projector, self.consumer, self.state, dead_letters=self.letters
        )

    async def step(self) -> None:
        await self.consumer.start()
        await self.runner.step()


async def test_a_batch_is_applied_its_versions_recorded_and_its_offsets_committed() -> None:
    events = [bare_event("A", 1), bare_event("A", 2), bare_event("B", 1)]
    projector = Recorder()
    harness = Harness(projector)
    for event in events:
        harness.consumer.append(event)
    await harness.step()
    assert projector.applied == [e.event_id for e in events]
    assert await harness.state.applied_versions(NAME, ["A", "B"]) == {"A": 2, "B": 1}
    assert harness.consumer.committed == 3 and harness.runner.applied_total == 3
    assert await harness.letters.find(status=None) == []


async def test_poison_records_are_parked_and_the_partition_moves_on() -> None:
    good, poison, later = bare_event("A", 1), bare_event("B", 1), bare_event("C", 1)
    projector = Recorder(poison={poison.event_id})
    harness = Harness(projector)
    harness.consumer.append(good)
    harness.consumer.append_raw(b"{not json", error="JSONDecodeError: Expecting property name")
    harness.consumer.append(poison)
    harness.consumer.append(later)
    await harness.step()
    assert projector.applied == [good.event_id, later.event_id]  # one by one, past the poison
    letters = await harness.letters.find(projection_source(NAME))
    assert [(x.kind, x.offset, x.event_id) for x in letters] == [
        (UNDECODABLE, 1, None),
        ("ValueError", 2, poison.event_id),
    ]
    # a parked event counts as processed: a consistency token naming it is met
    assert await harness.state.applied_version(NAME, "B") == 1
    assert harness.consumer.committed == 4
    assert (harness.runner.applied_total, harness.runner.parked_total) == (2, 2)


async def test_an_outage_is_retried_on_the_same_batch_and_nothing_is_parked() -> None:
    event = bare_event("A", 1)
    projector = Recorder(outages=2)
    harness = Harness(projector)
    harness.consumer.append(event)
    await harness.step()
    assert projector.applied == [event.event_id]
    assert await harness.letters.find(status=None) == []
    assert harness.consumer.committed == 1 and harness.runner.failing is None


async def test_while_catching_up_what_the_projection_applied_already_is_not_applied_again() -> None:
    """A record re-published into an empty log (issue 12): the events the
    tracking covers were applied before; only those past it reach the
    projector, and the batch still counts, records and commits them all."""
    projector = Recorder()
    harness = Harness(projector)
    await harness.state.record_applied(NAME, {"A": 2})
    events = [bare_event("A", 1), bare_event("A", 2), bare_event("B", 1), bare_event("A", 3)]
    for event in events:
        harness.consumer.append(event)
    await harness.step()
    assert projector.applied == [events[2].event_id, events[3].event_id]
    assert await harness.state.applied_versions(NAME, ["A", "B"]) == {"A": 3, "B": 1}
    assert harness.consumer.committed == 4

"""Issue 11, kind 12: the relay parks what the broker refuses for good, and a
relay that dies is noticed and restarted.

- An event too large for the producer's max.request.size (1 MiB) is refused
  for good: it is parked (marked in the event store, a dead letter with source
  "outbox", counted) and the events behind it still reach Kafka.
- A relay run that is cancelled from outside or raises is restarted by its
  supervisor; while it keeps failing, `herald_relay_up` is 0 and /readyz says
  so; once the fault is gone, both recover.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from adapters.kafka.topics import topic_for
from cli.dlq import replay_letters
from commands.ids import new_event_id
from devstack.herald import RunningHerald
from domain import events as ev
from domain.dead_letters import SOURCE_OUTBOX
from tests.e2e.test_walking_skeleton import announce
from tests.faults.test_outbox_broker_down import read_topic
from tests.projections.scenario import PORTAL
from tests.support import GraphQLClient, eventually


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def read_back(client: GraphQLClient, operator: str, announced: dict[str, Any]) -> None:
    """The card, read with the announcement's token: the relay published it."""
    card = await client.data(
        PORTAL,
        {
            "id": announced["corporateAction"]["id"],
            "consistencyToken": announced["consistencyToken"],
        },
        token=operator,
        operation_name="PortalCard",
    )
    assert card["corporateAction"]["id"] == announced["corporateAction"]["id"]


async def test_an_event_the_broker_refuses_is_parked_and_the_events_behind_it_arrive(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    services = herald.services
    operator = client.token("olga", "ca-operator")
    parked_before = sample("herald_relay_parked_total")
    before = await announce(client, operator, reference="RU-BEFORE-HUGE")
    # Over the producer's 1 MiB limit: the broker would never take it.
    [huge] = await services.events.append(
        [
            ev.EventEnvelope(
                event_id=new_event_id(),
                event_name=ev.CORPORATE_ACTION_ANNOUNCED,
                aggregate_type=ev.AGGREGATE_CORPORATE_ACTION,
                aggregate_id="ca-huge",
                version=1,
                occurred_at=datetime.now(UTC),
                actor="olga",
                correlation_id="huge",
                payload={"caVersion": 1, "terms": {"securityName": "X" * 1_200_000}},
            )
        ]
    )
    behind = [await announce(client, operator, reference=f"RU-BEHIND-HUGE-{n}") for n in range(3)]
    for announced in [before, *behind]:
        await read_back(client, operator, announced)

    await eventually(services.events.unpublished_count, lambda n: n == 0)
    [letter] = await eventually(lambda: services.dead_letters.find(SOURCE_OUTBOX), bool)
    assert letter.event_id == huge.event_id and letter.aggregate_id == "ca-huge"
    assert letter.kind == "MessageSizeTooLargeError"
    assert sample("herald_relay_parked_total") == parked_before + 1
    stored = await services.db["events"].find_one({"_id": huge.event_id})
    assert stored is not None and stored["published"] is None and stored["parkedAt"]

    topic = topic_for(herald.settings.kafka_topic_prefix, ev.AGGREGATE_CORPORATE_ACTION)
    records = await read_topic(herald.settings.kafka_bootstrap, topic, expected=4)
    assert {r["aggregateId"] for r in records} == {
        a["corporateAction"]["id"] for a in [before, *behind]
    }

    # Replay queues it again; still too large, so it is parked again.
    replayed, failing = await replay_letters(
        services, SOURCE_OUTBOX, out=io.StringIO(), progress=io.StringIO()
    )
    assert (replayed, failing) == (1, 0)
    [again] = await eventually(
        lambda: services.dead_letters.find(SOURCE_OUTBOX), lambda found: len(found) == 1
    )
    assert again.attempts == 2
    await eventually(services.events.unpublished_count, lambda n: n == 0)


async def test_a_cancelled_relay_is_restarted(herald: RunningHerald, client: GraphQLClient) -> None:
    services = herald.services
    restarts = sample("herald_task_restarts_total", task="relay")
    first = services.running["relay"]
    first.cancel()
    await eventually(lambda: _current(services.running["relay"]), lambda task: task is not first)
    assert sample("herald_task_restarts_total", task="relay") == restarts + 1
    operator = client.token("olga", "ca-operator")
    await read_back(client, operator, await announce(client, operator, reference="RU-RESTART"))


async def test_a_failing_relay_shows_in_readiness_and_recovers(
    herald: RunningHerald,
    client: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = herald.services.relay
    restarts = sample("herald_task_restarts_total", task="relay")

    async def broken() -> int:
        raise RuntimeError("relay bug")

    monkeypatch.setattr(relay, "run_once", broken)
    async with httpx.AsyncClient(base_url=herald.base_url) as http:
        down = await eventually(
            lambda: http.get("/readyz"),
            lambda r: r.status_code == 503 and not r.json()["checks"]["relay"],
        )
        assert down.json()["checks"]["store"] is True
        assert sample("herald_relay_up") == 0
        assert sample("herald_task_up", task="relay") == 0

        # Restarted again and again, but the traceback is logged once per kind.
        await eventually(
            lambda: _current(sample("herald_task_restarts_total", task="relay")),
            lambda n: n >= restarts + 2,
        )
        first_reports = [r for r in caplog.records if r.getMessage() == "relay failed; restarting"]
        assert len(first_reports) == 1 and first_reports[0].exc_info is not None

        monkeypatch.undo()
        await eventually(lambda: http.get("/readyz"), lambda r: r.status_code == 200)
    operator = client.token("olga", "ca-operator")
    await read_back(client, operator, await announce(client, operator, reference="RU-RECOVER"))
    assert sample("herald_relay_up") == 1
    assert sample("herald_task_up", task="relay") == 1


async def _current(task: Any) -> Any:
    return task

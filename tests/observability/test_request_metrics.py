"""The request metrics of issue 15 in one process: a consistency-token wait
that times out is counted and timed; GraphQL latency is labelled by the root
field the schema defines, never by a name the caller made up."""

from __future__ import annotations

import pytest
from graphql import GraphQLError
from prometheus_client import REGISTRY

from domain.consistency import CARDS_PROJECTION, ConsistencyToken
from domain.events import AGGREGATE_CORPORATE_ACTION
from queries.consistency import wait_until_projected
from queries.errors import NOT_CAUGHT_UP
from tests.support import GraphQLClient, RunningHerald


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_wait_that_times_out_is_counted_and_timed(herald: RunningHerald) -> None:
    labels = {"projection": CARDS_PROJECTION}
    timed_out = sample("herald_consistency_waits_total", **labels, outcome="timed_out")
    waits = sample("herald_consistency_wait_seconds_count", **labels)
    never = ConsistencyToken(AGGREGATE_CORPORATE_ACTION, "CA-NEVER-WRITTEN", 7, 10**9)
    with pytest.raises(GraphQLError, match="has not caught up") as raised:
        await wait_until_projected(
            never.encode(), CARDS_PROJECTION, herald.services.consistency_waits, 0.2
        )
    assert (raised.value.extensions or {})["code"] == NOT_CAUGHT_UP
    after = sample("herald_consistency_waits_total", **labels, outcome="timed_out")
    assert after == timed_out + 1
    assert sample("herald_consistency_wait_seconds_count", **labels) == waits + 1
    assert sample("herald_consistency_wait_seconds_sum", **labels) >= 0.2


async def test_graphql_latency_is_labelled_by_known_root_fields_only(api: GraphQLClient) -> None:
    def count(operation: str, outcome: str) -> float:
        return sample(
            "herald_graphql_request_seconds_count",
            operation=operation,
            type="query",
            outcome=outcome,
        )

    ok, other = count("corporateActions", "ok"), count("other", "error")
    await api.data("{ corporateActions(first: 1) { edges { cursor } } }")
    made_up = await api.execute("{ madeUpField }")
    assert made_up["errors"]
    assert count("corporateActions", "ok") == ok + 1
    assert count("other", "error") == other + 1
    assert (
        REGISTRY.get_sample_value(
            "herald_graphql_request_seconds_count",
            {"operation": "madeUpField", "type": "query", "outcome": "error"},
        )
        is None
    )

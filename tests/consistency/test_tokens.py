"""Issue 11, kind 5: a consistency token never makes a read wait for an event
the projection read does not follow; every token a mutation returns is met."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domain.consistency import PROJECTION_STREAMS, ConsistencyToken
from domain.events import AGGREGATE_CORPORATE_ACTION, AGGREGATE_NOTICE, AGGREGATE_POSITIONS
from tests.projections.scenario import PORTAL, Portal
from tests.support import GraphQLClient, eventually

STREAMS = (AGGREGATE_CORPORATE_ACTION, AGGREGATE_POSITIONS, AGGREGATE_NOTICE)


@given(
    st.sampled_from(STREAMS),
    st.text(min_size=1, max_size=30),
    st.integers(1, 2**40),
    st.integers(0, 2**62),
    st.sampled_from(sorted(PROJECTION_STREAMS)),
)
def test_a_token_is_awaited_only_by_projections_that_follow_its_stream(
    stream: str, aggregate_id: str, version: int, sequence: int, projection: str
) -> None:
    token = ConsistencyToken.decode(
        ConsistencyToken(stream, aggregate_id, version, sequence).encode()
    )
    assert token.awaited_by(projection) == (stream in PROJECTION_STREAMS[projection])
    assert ConsistencyToken(stream, aggregate_id, version, sequence).awaited_by("unknown")


async def test_the_token_of_record_positions_reads_a_card_back_at_once(
    client: GraphQLClient,
) -> None:
    portal = Portal(client)
    action_id = await portal.publish(reference="RU-TOKEN-POS")

    async def card_of(token: str | None) -> dict[str, Any]:
        variables = {"id": action_id, "consistencyToken": token}
        return await client.data(
            PORTAL, variables, token=portal.operator, operation_name="PortalCard"
        )

    await eventually(lambda: card_of(None), lambda data: data["corporateAction"] is not None)
    recorded = await client.data(
        PORTAL,
        {
            "input": {
                "isin": "RU0009029540",
                "asOf": "2026-12-15",
                "positions": [{"accountId": "ACC-1", "quantity": "10", "taxRatePercent": "13"}],
            }
        },
        token=portal.operator,
        operation_name="PortalRecordPositions",
    )
    token = recorded["recordPositions"]["consistencyToken"]
    # Before the fix: NOT_CAUGHT_UP after the whole wait, for ever — the cards
    # projection never records the versions of a positions stream.
    card = await card_of(token)
    assert card["corporateAction"]["id"] == action_id

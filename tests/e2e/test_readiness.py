"""Issue 11, kind 6: /readyz is 200 only when a command accepted now is
readable within the normal delay — the first command after ready reads back
like any other, on both brokers."""

from __future__ import annotations

from adapters.auth.dev_issuer import DevIssuer
from devstack.herald import RunningHerald
from tests.e2e.test_walking_skeleton import announce
from tests.projections.scenario import PORTAL
from tests.support import Broker, GraphQLClient, herald_settings


async def test_the_first_command_after_ready_reads_back_at_once(
    broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> None:
    # The production wait, not the suites' generous one.
    settings = herald_settings(broker, mongo_uri, issuer, consistency_wait_seconds=3.0)
    async with (
        RunningHerald(settings, issuer) as herald,  # returns once /readyz is 200
        GraphQLClient.of(herald) as client,
    ):
        operator = client.token("olga", "ca-operator")
        announced = await announce(client, operator, reference="RU-FIRST-AFTER-READY")
        card = await client.data(
            PORTAL,
            {
                "id": announced["corporateAction"]["id"],
                "consistencyToken": announced["consistencyToken"],
            },
            token=operator,
            operation_name="PortalCard",
        )
        assert card["corporateAction"]["status"] == "DRAFT"
        checks = (await client.http.get("/readyz")).json()["checks"]
        assert checks["projector:cards"] and checks["projector:notices"]

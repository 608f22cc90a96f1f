"""Issue 12, item 6: a restart costs what is new. Herald started again against
an empty event log (Tansu keeps it in memory) re-publishes only what some
projection has not applied, is ready once a command accepted now reads back
normally, and keeps the read models and earlier consistency tokens as they were."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo.cards import CARDS
from adapters.mongo.lease import LEASES
from adapters.mongo.notice_projection import NOTICES, SUBSCRIPTIONS
from adapters.mongo.projection_state import CHECKPOINTS, TRACKING
from devstack.herald import RunningHerald
from devstack.tansu import TansuBroker
from observability.readiness import passed
from services import Services
from settings import Settings
from tests.builders import seed_announcements
from tests.e2e.test_walking_skeleton import announce
from tests.projections.scenario import PORTAL
from tests.support import Broker, GraphQLClient, checkpoints_at_end, eventually, herald_settings

# events in the record before the restart: more than one checkpoint page
# (projections/checkpoint.PAGE) and than two relay batches
STORED = 1_200
READ_MODELS = (CARDS, NOTICES, SUBSCRIPTIONS, TRACKING)


class Tansu:
    """A memory-only Tansu on one port, restartable: each start is an empty log."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.running = TansuBroker(log_dir=log_dir)
        self.running.start()
        self.broker = Broker("tansu", self.running.bootstrap_servers, idempotent=False)

    def restart_empty(self) -> None:
        self.running.stop()
        self.running = TansuBroker(self.running.port, log_dir=self._log_dir)
        self.running.start()


@pytest.fixture
def tansu_of_its_own(tmp_path: Path) -> Iterator[Tansu]:
    tansu = Tansu(tmp_path)
    yield tansu
    tansu.running.stop()


@pytest.fixture
async def store(mongo_uri: str) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    yield client
    await client.close()


async def read_models(db: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: [doc async for doc in db[name].find({}).sort("_id", 1)] for name in READ_MODELS}


async def card_read(client: GraphQLClient, token: str, action_id: str, consistency: str) -> Any:
    card = await client.data(
        PORTAL,
        {"id": action_id, "consistencyToken": consistency},
        token=token,
        operation_name="PortalCard",
    )
    return card["corporateAction"]


async def seeded(herald: RunningHerald) -> None:
    """Store STORED announcements and wait until every projection applied
    them and its checkpoint stands at the record's end."""
    services = herald.services
    await seed_announcements(services.events, STORED)
    services.relay.notify()
    await checkpoints_at_end(herald)


async def test_a_restart_on_an_empty_log_republishes_only_what_is_new(
    tansu_of_its_own: Tansu, mongo_uri: str, issuer: DevIssuer, store: Any
) -> None:
    # The production wait for tokens; checkpoints advance at once (no appends in flight).
    settings = herald_settings(
        tansu_of_its_own.broker,
        mongo_uri,
        issuer,
        consistency_wait_seconds=3.0,
        checkpoint_horizon_seconds=0.0,
    )
    db = store[settings.mongo_database]
    async with RunningHerald(settings, issuer) as herald, GraphQLClient.of(herald) as client:
        operator = client.token("olga", "ca-operator")
        before = await announce(client, operator, reference="RU-BEFORE-RESTART")
        await seeded(herald)
        await eventually(herald.behind, lambda behind: behind == 0)
        models = await read_models(db)
    assert len(models[CARDS]) == STORED + 1
    # a clean stop gives the relay's lease up: the next relay publishes at once
    assert await db[LEASES].count_documents({}) == 0

    tansu_of_its_own.restart_empty()
    async with RunningHerald(settings, issuer) as herald, GraphQLClient.of(herald) as client:
        # ready (RunningHerald waited for /readyz 200) without re-publishing history
        assert herald.services.relay.published_total == 0
        assert await read_models(db) == models
        # a token issued before the restart is met (it names a stream version, not an offset)
        card = await card_read(
            client, operator, before["corporateAction"]["id"], before["consistencyToken"]
        )
        assert card["reference"] == "RU-BEFORE-RESTART"
        # a new write reads back with its token within the normal wait
        after = await announce(client, operator, reference="RU-AFTER-RESTART")
        card = await card_read(
            client, operator, after["corporateAction"]["id"], after["consistencyToken"]
        )
        assert card["status"] == "DRAFT"
        assert herald.services.relay.published_total == 1


async def test_readiness_says_how_far_behind_until_the_republished_record_is_consumed(
    tansu_of_its_own: Tansu, mongo_uri: str, issuer: DevIssuer, store: Any
) -> None:
    settings = herald_settings(
        tansu_of_its_own.broker, mongo_uri, issuer, checkpoint_horizon_seconds=0.0
    )
    db = store[settings.mongo_database]
    async with RunningHerald(settings, issuer) as herald:
        await seeded(herald)
        models = await read_models(db)
    # Checkpoints lost (as after an upgrade from a Herald without them): all of it again.
    await db[CHECKPOINTS].delete_many({})
    tansu_of_its_own.restart_empty()
    services = Services(settings.with_overrides(run_relay=False))
    await services.start()
    try:
        # The topics task sets the re-publishing mark a moment after start; until
        # then the progress counts only the projectors' lag.
        checks = await eventually(
            services.ready, lambda checks: "relay" in checks and services.progress is not None
        )
        assert not checks["relay"]
        assert services.progress == f"catching up: {STORED} events behind"
        relay = asyncio.create_task(services.relay.run())  # the relay of another process
        try:
            await eventually(services.ready, passed, timeout=120)
            assert services.progress is None
            assert await read_models(db) == models
        finally:
            relay.cancel()
    finally:
        await services.stop()


def test_the_checkpoint_horizon_is_read_from_the_environment() -> None:
    env = {"HERALD_CHECKPOINT_HORIZON_SECONDS": "5"}
    assert Settings.from_env(env).checkpoint_horizon_seconds == 5.0

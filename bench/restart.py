"""Restart cost: Herald started again against an empty event log (Tansu keeps
its log in memory) with N events in its record (issue 12, item 6).

For each N: seed N announcements, let one Herald project them all (and its
projections record their applied-through checkpoints), stop it, empty the log
(restart Tansu), then start Herald again and measure

- ready: from the start until /readyz answers 200;
- readable: from ready until a new announcement is in the cards read model
  (what a read with its consistency token waits for).

`--old` also measures the path before checkpoints (they are deleted before
the start: the whole record is re-published). Readiness there is truthful
now (it waits for the re-published record), so its "ready" is what the
first readable write used to take.

    .venv/bin/python -m bench.restart                  # 10 000 and 50 000 events
    .venv/bin/python -m bench.restart --events 10000 --old
    .venv/bin/python -m bench.restart --large          # adds 500 000 (long)

Measured on the shared 2-core dev machine (Tansu, SecantusDB; before the
relay lease was released on stop, so "readable" includes waiting for it):

    events  path  republished  ready s  readable s
     10000  new             0      6.6        1.41
     10000  old         10001     77.0        0.32
     50000  new             0      6.1        2.25
     10000  new             0      7.3        0.06   (lease released on stop)

(old at 50 000 not run: projecting the record took 2 238 s here.)

Seeded in bulk (the default now; the machine at load 12-18 from other
benchmarks; SecantusDB, a Python process, took the 50 000 in 206 s):

    events  path  republished  ready s  readable s
     10000  new             0      7.4        0.30
     50000  new             0      7.9        0.51

Seeded without a sync per commit, in batches of 10 000 (then the store
started again with one); at nice 19 on the machine at load ~9 from other
engineers' runs, the seeding took 1 362 s:

    events  path  republished  ready s  readable s
    500000  new             0      6.7        0.19
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo.client import Document, connect
from adapters.mongo.event_store import COUNTERS, EVENTS
from adapters.mongo.projection_state import CHECKPOINTS, MongoProjectionState
from bench.commands_throughput import ANNOUNCE
from bench.stack import OPERATOR, settled
from devstack.herald import RunningHerald
from devstack.process import free_port
from devstack.secantus import SecantusServer
from devstack.tansu import TansuBroker
from domain.consistency import PROJECTION_STREAMS
from domain.principal import ROLE_OPERATOR
from settings import Settings
from tests.builders import seed_announcements
from tests.support import DIVIDEND

# Clones per insert_many while seeding (each read-model collection too).
SEED_BATCH = 10_000


@dataclass(frozen=True)
class Figures:
    events: int
    path: str
    republished: int
    ready_seconds: float
    readable_seconds: float


async def checkpoints_at_end(herald: RunningHerald) -> None:
    services = herald.services
    end = await services.events.last_sequence()
    for projection in PROJECTION_STREAMS:
        while await services.projection_state.applied_through(projection) < end:  # noqa: ASYNC110 - polls the store
            await asyncio.sleep(0.2)


async def restart(settings: Settings, issuer: DevIssuer, events: int, path: str) -> Figures:
    started = time.perf_counter()
    herald = RunningHerald(settings, issuer)
    await herald.start(timeout=3_600)
    ready = time.perf_counter() - started
    try:
        services = herald.services
        republished = services.relay.published_total
        written = time.perf_counter()
        terms = {**DIVIDEND, "reference": f"RU-RESTART-{path}-{events}-{free_port()}"}
        announced = await services.handlers.announce(terms, OPERATOR)
        while await services.projection_state.applied_version("cards", announced.action.id) < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        readable = time.perf_counter() - written
        await checkpoints_at_end(herald)
    finally:
        await herald.stop()
    return Figures(events, path, republished, ready, readable)


async def bulk_seed(
    settings: Settings, issuer: DevIssuer, events: int, *, through_api: bool = False
) -> None:
    """A store as N projected announcements leave it, written directly: one
    announcement through a running Herald (its command path and projectors),
    then its event and every read-model document naming its action cloned
    N - 1 times with new ids and references (inserted in bulk, indexes
    already made), the sequence counter and every checkpoint set to the end.
    The command path writes ~25 events/s at these sizes; this, thousands.
    `through_api`: the template is announced over GraphQL, so its
    Idempotency-Key record is cloned too (one per command, as the API leaves)."""
    key = f"template-{uuid.uuid4().hex}"
    async with RunningHerald(settings, issuer) as herald:
        services = herald.services
        terms = {**DIVIDEND, "reference": "RU-TEMPLATE-0"}
        if through_api:
            template_id = await _announced_over_http(herald, terms, key)
        else:
            template_id = (await services.handlers.announce(terms, OPERATOR)).action.id
        await settled(herald)
        await checkpoints_at_end(herald)
    # A long socket timeout and no driver retry: a bulk insert outlasting the
    # usual 10 s would be sent again (SecantusDB does not deduplicate retries).
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongo_uri, retryWrites=False, socketTimeoutMS=600_000
    )
    db = client[settings.mongo_database]
    try:
        template_event = await db[EVENTS].find_one({"aggregateId": template_id})
        assert template_event is not None
        base = int(template_event["sequence"])
        clones: dict[str, list[Document]] = {EVENTS: []}
        templates: dict[str, list[Document]] = {}
        for name in await db.list_collection_names():
            if name in (EVENTS, COUNTERS, CHECKPOINTS):
                continue
            found = [d async for d in db[name].find({}) if template_id in repr(d) or key in repr(d)]
            if found:
                templates[name] = found
                clones[name] = []
        for n in range(1, events):
            changes = {
                template_id: f"{template_id[:-8]}{n:08d}",
                "RU-TEMPLATE-0": f"RU-T-{n}",
                key: f"{key}-{n}",
            }
            event = _replaced(template_event, changes)
            event.update({"_id": uuid.uuid4().hex, "sequence": base + n, "published": True})
            clones[EVENTS].append(event)
            for name, found in templates.items():
                for doc in found:
                    copy = _replaced(doc, changes)
                    if not isinstance(copy["_id"], str):  # an ObjectId: a new one
                        del copy["_id"]
                    clones[name].append(copy)
            if n % SEED_BATCH == 0 or n == events - 1:
                for name, documents in clones.items():
                    if documents:
                        await db[name].insert_many(documents, ordered=False)
                    documents.clear()
        end = base + events - 1
        await db[COUNTERS].update_one({"_id": EVENTS}, {"$max": {"value": end}})
        state = MongoProjectionState(db)
        for projection in PROJECTION_STREAMS:
            await state.advance_applied_through(projection, end)
    finally:
        await client.close()


async def _announced_over_http(herald: RunningHerald, terms: dict[str, Any], key: str) -> str:
    """Announce `terms` through GraphQL under Idempotency-Key `key`; the action's id."""
    token = herald.issuer.mint("bench", roles=[ROLE_OPERATOR])
    transport = httpx.ASGITransport(app=herald.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:
        response = await http.post(
            "/graphql",
            json={"query": ANNOUNCE, "variables": {"input": terms}},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        )
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    return str(body["data"]["announceCorporateAction"]["corporateAction"]["id"])


def _replaced(value: Any, changes: dict[str, str]) -> Any:
    """`value` with every string's occurrences of each key replaced."""
    if isinstance(value, str):
        for before, after in changes.items():
            value = value.replace(before, after)
        return value
    if isinstance(value, dict):
        return {key: _replaced(item, changes) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, changes) for item in value]
    return value


@dataclass
class SeedStack:
    """A fresh store and Tansu in a work folder, and the settings of a Herald
    on them. The store starts without a sync per commit, to be seeded (what
    made 500 000 events take ~35 min); `durable()` starts it again as Herald
    runs it, with one. `tansu` is replaced by a restart."""

    work: Path
    store: SecantusServer
    tansu: TansuBroker
    issuer: DevIssuer
    settings: Settings

    async def durable(self) -> None:
        """The store started again with a sync per commit (the same port)."""
        self.store.stop()
        self.store = SecantusServer(self.work / "store", self.store.port, sync_on_commit=True)
        await self.store.start_async(timeout=600)


@asynccontextmanager
async def seed_stack(prefix: str, *, keep: bool = False) -> AsyncIterator[SeedStack]:
    work = Path(tempfile.mkdtemp(prefix=f"herald-bench-{prefix}-"))
    store = SecantusServer(work / "store", sync_on_commit=False)
    await store.start_async()
    tansu = TansuBroker(log_dir=work)
    await tansu.start_async()
    issuer = DevIssuer(work / "issuer")
    settings = Settings(
        port=free_port(),
        mongo_uri=store.uri,
        mongo_database="herald",
        kafka_bootstrap=tansu.bootstrap_servers,
        kafka_idempotent_producer=False,
        jwks_location=str(issuer.jwks_path),
        jwt_issuer=issuer.issuer,
        jwt_audience=issuer.audience,
        relay_poll_seconds=0.05,
        checkpoint_horizon_seconds=0.0,  # nothing in flight: checkpoints follow at once
    )
    stack = SeedStack(work, store, tansu, issuer, settings)
    try:
        yield stack
    finally:
        stack.tansu.stop()
        stack.store.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


async def measure(events: int, *, old: bool, keep: bool, projected: bool) -> list[Figures]:
    figures: list[Figures] = []
    async with seed_stack("restart", keep=keep) as stack:
        store, tansu, issuer, settings = stack.store, stack.tansu, stack.issuer, stack.settings
        seeding = time.perf_counter()
        if projected:
            async with RunningHerald(settings, issuer) as herald:
                await seed_announcements(herald.services.events, events)
                herald.services.relay.notify()
                await settled(herald)
                await checkpoints_at_end(herald)
        else:
            await bulk_seed(settings, issuer, events)
        print(f"  {events} events seeded and projected in {time.perf_counter() - seeding:.0f}s")
        await stack.durable()
        store = stack.store
        for path in ("new", "old") if old else ("new",):
            tansu.stop()
            stack.tansu = tansu = TansuBroker(tansu.port, log_dir=stack.work)  # an empty log
            await tansu.start_async()
            if path == "old":  # as before checkpoints: the whole record again
                client = connect(store.uri)
                await client[settings.mongo_database][CHECKPOINTS].delete_many({})
                await client.close()
            figures.append(await restart(settings, issuer, events, path))
            print(f"  {figures[-1]}")
    return figures


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("services").setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--large", action="store_true", help="also 500 000 events (long)")
    parser.add_argument("--old", action="store_true", help="also the path before checkpoints")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--projected",
        action="store_true",
        help="seed through the command path and the projectors (slow) instead of in bulk",
    )
    args = parser.parse_args()
    sizes = [*args.events, *([500_000] if args.large else [])]
    results: list[Figures] = []
    for events in sizes:
        print(f"{events} stored events:")
        results.extend(
            await measure(events, old=args.old, keep=args.keep, projected=args.projected)
        )
    print(f"\n{'events':>8} {'path':>4} {'republished':>11} {'ready s':>8} {'readable s':>10}")
    for f in results:
        print(
            f"{f.events:>8} {f.path:>4} {f.republished:>11} "
            f"{f.ready_seconds:>8.1f} {f.readable_seconds:>10.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())

"""The edge's read cache in front of a real Herald (issue 16 item 7): real
nginx, real redis-server, a whole Herald (SecantusDB, Tansu) on loopback.

Anonymous GETs of the website's persisted queries are answered from nginx's
cache (X-Cache: HIT) under the publication generation Herald sets in Redis;
anything with a token or a cookie is never stored nor answered from it; a
card published through Herald is answered by the edge as soon as Herald's own
cache answers it; with the edge's Redis down the edge still answers (from the
app, uncached).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import websockets

from adapters.auth.dev_issuer import DevIssuer
from adapters.redis.generation import RedisPublicGeneration
from devstack.herald import RunningHerald
from devstack.redis import RedisServer, command
from edge import EdgeServer
from tests.api.helpers import PROTOCOL, Socket
from tests.api.test_public_cache import a_record_date
from tests.edge.conftest import EdgeFactory
from tests.edge.support import edge_metrics
from tests.edge.test_redis_faults import TIGHT
from tests.projections.scenario import Portal
from tests.support import Broker, GraphQLClient, eventually, herald_settings, operation_document

WEBSITE = operation_document("website")


def card_on(day: date, reference: str) -> dict[str, Any]:
    return {
        "reference": reference,
        "announcementDate": (day - timedelta(days=20)).isoformat(),
        "recordDate": day.isoformat(),
        "paymentDate": (day + timedelta(days=10)).isoformat(),
    }


def card_list(day: date) -> dict[str, str]:
    """The website's card list of one record date, as GET parameters."""
    variables = {"filter": {"recordDateFrom": day.isoformat(), "recordDateTo": day.isoformat()}}
    return {
        "query": WEBSITE,
        "operationName": "WebsiteCards",
        "variables": json.dumps({**variables, "first": 20}),
    }


async def stored_generation(server: RedisServer, key: str) -> Any:
    client = server.client()
    try:
        return await command(client, "GET", key)
    finally:
        await client.aclose()


def shows(*expected: str) -> Callable[[httpx.Response], bool]:
    """A check for `eventually`: the answer lists exactly these references."""
    return lambda r: r.status_code == 200 and references(r) == sorted(expected)


def references(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    payload = response.json()
    assert not payload.get("errors"), payload
    return sorted(e["node"]["reference"] for e in payload["data"]["corporateActions"]["edges"])


@pytest.fixture(scope="module")
def generation_key() -> str:
    return f"herald:edge:generation:{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def herald(
    tansu_broker: Broker,
    mongo_uri: str,
    issuer: DevIssuer,
    redis_server: RedisServer,
    generation_key: str,
) -> AsyncIterator[RunningHerald]:
    settings = herald_settings(
        tansu_broker,
        mongo_uri,
        issuer,
        edge_redis_url=f"redis://{redis_server.address}/0",
        edge_generation_key=generation_key,
    )
    async with RunningHerald(settings, issuer) as running:
        yield running


@pytest.fixture(scope="module")
def cache_edge(
    make_edge: EdgeFactory, herald: RunningHerald, redis_server: RedisServer, generation_key: str
) -> EdgeServer:
    return make_edge(
        (redis_server.address,),
        name="read-cache",
        upstreams=(f"127.0.0.1:{herald.settings.port}",),
        cache_generation_key=generation_key,
    )


@pytest.fixture
async def api(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(herald) as client:
        yield client


Publish = Callable[..., Awaitable[None]]


@pytest.fixture
def publish(api: GraphQLClient, redis_server: RedisServer, generation_key: str) -> Publish:
    """Publish a card through Herald and wait until Herald has set the edge
    cache's generation for it: no later change moves the keys mid-test."""

    async def publish_settled(**terms: Any) -> None:
        before = await stored_generation(redis_server, generation_key)
        await Portal(api).publish(**terms)
        await eventually(
            lambda: stored_generation(redis_server, generation_key), lambda now: now != before
        )

    return publish_settled


@pytest.fixture
async def through_edge(cache_edge: EdgeServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cache_edge.base_url, timeout=30) as client:
        yield client


def cache_answers(metrics: dict[str, float], status: str) -> float:
    return metrics.get(f'herald_edge_cache_requests_total{{status="{status}"}}', 0.0)


async def test_a_second_anonymous_get_is_a_hit_with_the_same_body(
    api: GraphQLClient, through_edge: httpx.AsyncClient, publish: Publish, cache_edge: EdgeServer
) -> None:
    day = a_record_date()
    await publish(**card_on(day, "RU-EDGE-HIT-1"))
    # what Herald itself answers once the card is in its read model
    await eventually(
        lambda: api.http.get("/graphql", params=card_list(day)),
        shows("RU-EDGE-HIT-1"),
    )

    before = await edge_metrics(cache_edge)
    first = await through_edge.get("/graphql", params=card_list(day))
    assert references(first) == ["RU-EDGE-HIT-1"]
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["cache-control"] == "public, max-age=5"

    again = await through_edge.get("/graphql", params=card_list(day))
    assert again.headers["x-cache"] == "HIT"
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]

    # the edge answers a revalidation itself
    revalidated = await through_edge.get(
        "/graphql", params=card_list(day), headers={"If-None-Match": first.headers["etag"]}
    )
    assert revalidated.status_code == 304
    assert revalidated.headers["x-cache"] == "HIT"

    # the dashboard's hit ratio counts each answer by its X-Cache value
    after = await edge_metrics(cache_edge)
    assert cache_answers(after, "MISS") - cache_answers(before, "MISS") == 1
    assert cache_answers(after, "HIT") - cache_answers(before, "HIT") == 2


async def test_a_request_with_a_token_or_a_cookie_is_never_cached(
    api: GraphQLClient, through_edge: httpx.AsyncClient, publish: Publish
) -> None:
    """The operator sees the announced (unapproved) card too: the two answers
    differ, and neither is ever handed to the other kind of caller."""
    day = a_record_date()
    portal = Portal(api)
    await publish(**card_on(day, "RU-EDGE-PUB-1"))
    await portal.announce(**card_on(day, "RU-EDGE-DRAFT-1"))
    operator = {"Authorization": f"Bearer {portal.operator}"}
    await eventually(
        lambda: api.http.get("/graphql", params=card_list(day), headers=operator),
        shows("RU-EDGE-DRAFT-1", "RU-EDGE-PUB-1"),
    )
    await eventually(
        lambda: api.http.get("/graphql", params=card_list(day)),
        shows("RU-EDGE-PUB-1"),
    )

    for _ in range(2):  # an authenticated answer is never stored
        private = await through_edge.get("/graphql", params=card_list(day), headers=operator)
        assert references(private) == ["RU-EDGE-DRAFT-1", "RU-EDGE-PUB-1"]
        assert private.headers["x-cache"] == "BYPASS"
        assert "no-store" in private.headers["cache-control"]

    anonymous = await through_edge.get("/graphql", params=card_list(day))
    assert references(anonymous) == ["RU-EDGE-PUB-1"]
    assert anonymous.headers["x-cache"] == "MISS"
    assert (await through_edge.get("/graphql", params=card_list(day))).headers["x-cache"] == "HIT"

    # the anonymous entry is cached now: a caller with a token still gets its own answer
    private = await through_edge.get("/graphql", params=card_list(day), headers=operator)
    assert references(private) == ["RU-EDGE-DRAFT-1", "RU-EDGE-PUB-1"]
    assert private.headers["x-cache"] == "BYPASS"

    with_cookie = await through_edge.get(
        "/graphql", params=card_list(day), headers={"Cookie": "session=1"}
    )
    assert references(with_cookie) == ["RU-EDGE-PUB-1"]
    assert with_cookie.headers["x-cache"] == "BYPASS"

    # a POST of the same query is not served from the cache either
    posted = await through_edge.post(
        "/graphql",
        json={**card_list(day), "variables": json.loads(card_list(day)["variables"])},
    )
    assert references(posted) == ["RU-EDGE-PUB-1"]
    assert posted.headers["x-cache"] == "BYPASS"


async def test_a_card_published_through_herald_is_answered_at_once(
    api: GraphQLClient,
    through_edge: httpx.AsyncClient,
    redis_server: RedisServer,
    generation_key: str,
    publish: Publish,
) -> None:
    """Once Herald itself answers the new card, the very next anonymous GET
    through the edge answers it too (no waiting at the edge)."""
    day = a_record_date()
    portal = Portal(api)
    await publish(**card_on(day, "RU-EDGE-OLD-1"))
    await eventually(
        lambda: api.http.get("/graphql", params=card_list(day)),
        shows("RU-EDGE-OLD-1"),
    )
    assert references(await through_edge.get("/graphql", params=card_list(day))) == [
        "RU-EDGE-OLD-1"
    ]
    cached = await through_edge.get("/graphql", params=card_list(day))
    assert cached.headers["x-cache"] == "HIT"
    generation = await stored_generation(redis_server, generation_key)

    await portal.publish(**card_on(day, "RU-EDGE-NEW-1"))
    await eventually(
        lambda: api.http.get("/graphql", params=card_list(day)),
        shows("RU-EDGE-NEW-1", "RU-EDGE-OLD-1"),
    )
    fresh = await through_edge.get("/graphql", params=card_list(day))
    assert references(fresh) == ["RU-EDGE-NEW-1", "RU-EDGE-OLD-1"]
    assert fresh.headers["x-cache"] == "MISS"
    assert await stored_generation(redis_server, generation_key) != generation


async def test_with_the_edges_redis_down_the_edge_still_answers(
    api: GraphQLClient,
    make_edge: EdgeFactory,
    herald: RunningHerald,
    own_redis: RedisServer,
    publish: Publish,
) -> None:
    edge = make_edge(
        (own_redis.address,),
        name=f"cache-fault-{uuid.uuid4().hex[:6]}",
        upstreams=(f"127.0.0.1:{herald.settings.port}",),
        **TIGHT,
    )
    day = a_record_date()
    await publish(**card_on(day, "RU-EDGE-DOWN-1"))
    await eventually(
        lambda: api.http.get("/graphql", params=card_list(day)),
        shows("RU-EDGE-DOWN-1"),
    )
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=30) as http:
        assert (await http.get("/graphql", params=card_list(day))).headers["x-cache"] == "MISS"
        assert (await http.get("/graphql", params=card_list(day))).headers["x-cache"] == "HIT"

        own_redis.kill()
        before = await edge_metrics(edge)
        for _ in range(5):
            answer = await http.get("/graphql", params=card_list(day))
            assert references(answer) == ["RU-EDGE-DOWN-1"]
            # without the generation the entry's freshness is unknown: the app answers
            assert answer.headers["x-cache"] == "BYPASS"
        after = await edge_metrics(edge)

    def cache_fail_opens(metrics: dict[str, float]) -> float:
        return sum(
            v for k, v in metrics.items() if k.startswith("herald_edge_cache_fail_opens_total")
        )

    assert cache_fail_opens(after) - cache_fail_opens(before) == 5


async def test_a_generation_the_app_could_not_set_is_set_once_redis_is_back(
    own_redis: RedisServer,
) -> None:
    """Redis down at a publication: `advance` neither raises nor waits past its
    timeout, and a new generation is set in the background once Redis answers."""
    key = "herald:edge:generation:fault"
    generation = RedisPublicGeneration(
        f"redis://{own_redis.address}/0", key, timeout_seconds=0.25, retry_seconds=0.1
    )
    try:
        await generation.advance()
        first = await stored_generation(own_redis, key)
        assert first is not None and first.decode() == generation.current

        own_redis.kill()
        await generation.advance()  # refused: logged, retried in the background
        assert generation.current == first.decode()
        own_redis.start()  # an empty Redis on the same port
        second = await eventually(
            lambda: stored_generation(own_redis, key), lambda value: value is not None
        )
        assert second != first and second.decode() == generation.current
    finally:
        await generation.close()


async def test_a_subscription_goes_through_the_cached_location(
    api: GraphQLClient, cache_edge: EdgeServer
) -> None:
    """A WebSocket upgrade is a GET without a token: the edge must neither look
    it up nor store it, only pass it on (graphql-transport-ws end to end)."""
    host, port = cache_edge.config.listen_address
    async with websockets.connect(f"ws://{host}:{port}/graphql", subprotocols=[PROTOCOL]) as ws:
        socket = Socket(ws)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await socket.receive())["type"] == "connection_ack"
        await socket.subscribe("subscription { cardPublished { reference } }")
        reference = f"RU-EDGE-WS-{uuid.uuid4().hex[:6].upper()}"
        await Portal(api).publish(**card_on(a_record_date(), reference))
        while True:  # other tests' cards may be published meanwhile
            card = (await socket.next_data(timeout=30))["cardPublished"]
            if card["reference"] == reference:
                break

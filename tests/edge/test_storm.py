"""Several edges, one truth: two nginx instances on different ports share one
Redis; 1 000 concurrent duplicates split across both reach the app once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

from devstack.redis import RedisServer
from tests.edge.conftest import EdgeFactory
from tests.edge.httpclient import RawHTTPPool, RawResponse
from tests.edge.support import Upstream, edge_metrics, fail_opens

DUPLICATES = 1000
CONNECTIONS = 100  # split over the two edges; enough for 2 cores

DECISIONS = ("herald_edge_claims_total", "herald_edge_conflicts_total", "herald_edge_replays_total")


async def test_two_edge_storm_executes_once(
    make_edge: EdgeFactory, redis_server: RedisServer, upstream: Upstream
) -> None:
    edges = [
        make_edge((redis_server.address,), name="storm-a"),
        make_edge((redis_server.address,), name="storm-b"),
    ]
    before = [await edge_metrics(e) for e in edges]
    key = f"storm-{uuid.uuid4()}"
    headers = {
        "Idempotency-Key": key,
        "Authorization": "Bearer storm-caller",
        "Content-Type": "application/json",
        # the first execution takes a while, so the storm meets it in flight
        "X-Test-Delay": "0.3",
    }
    body = json.dumps({"query": 'mutation { announce(isin: "DE0007164600") { id } }'}).encode()
    pools = [RawHTTPPool(*e.config.listen_address, connections=CONNECTIONS // 2) for e in edges]

    async def post(i: int) -> RawResponse:
        return await pools[i % 2].post("/graphql", body, headers)

    try:
        started = time.monotonic()
        responses = await asyncio.gather(*(post(i) for i in range(DUPLICATES)))
        storm_seconds = time.monotonic() - started
        # after the storm, duplicates are replays on both edges
        late = await asyncio.gather(*(post(i) for i in range(100)))
    finally:
        for pool in pools:
            await pool.close()

    assert await upstream.stats(key) == {"hits": 1, "executions": 1}

    kinds: Counter[str] = Counter()
    bodies = set()
    for response in responses:
        if response.status == 409:
            assert response.headers["content-type"] == "application/problem+json"
            assert json.loads(response.body)["code"] == "REQUEST_IN_PROGRESS"
            kinds["in_flight"] += 1
        else:
            assert response.status == 200, response.body
            bodies.add(response.body)
            replayed = response.headers.get("idempotent-replayed") == "true"
            kinds["replay" if replayed else "original"] += 1
    assert kinds["original"] == 1, kinds
    assert kinds["in_flight"] + kinds["replay"] == DUPLICATES - 1
    assert len(bodies) == 1, "every 200 is the same stored answer"
    for response in late:
        assert response.status == 200
        assert response.headers["idempotent-replayed"] == "true"
        assert response.body in bodies

    after = [await edge_metrics(e) for e in edges]
    pairs = list(zip(after, before, strict=True))

    def total(metric: str) -> float:
        return sum(a[metric] - b[metric] for a, b in pairs)

    assert total("herald_edge_claims_total") == 1
    assert total("herald_edge_conflicts_total") == kinds["in_flight"]
    assert total("herald_edge_replays_total") == kinds["replay"] + len(late)
    assert sum(fail_opens(a) - fail_opens(b) for a, b in pairs) == 0
    for a, b in pairs:  # both edges took their half
        assert sum(a[m] - b[m] for m in DECISIONS) == (DUPLICATES + len(late)) // 2
    print(
        f"\nstorm: {DUPLICATES} duplicates over 2 edges in {storm_seconds:.2f}s -> "
        f"1 execution, {kinds['in_flight']} x 409, {kinds['replay']} replays"
    )

"""The edge fails open: with Redis killed, paused (slow) or restarted,
requests keep flowing to the app, every one is answered, the fail-opens are
counted, and the app's own check catches the duplicates the edge let through.
Each test has its own Redis and edge, so killing it disturbs no one else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections import Counter

import pytest

from devstack.redis import RedisServer, command
from edge import EdgeConfig, EdgeServer
from tests.edge.conftest import EdgeFactory
from tests.edge.httpclient import RawHTTPPool
from tests.edge.support import Upstream, edge_metrics, fail_opens

# the production defaults: tight Redis timeouts and back-off
TIGHT = {
    f.name: f.default
    for f in dataclasses.fields(EdgeConfig)
    if f.name.startswith(("redis_connect_timeout", "redis_read_timeout", "redis_backoff"))
}


@pytest.fixture
def fault_edge(make_edge: EdgeFactory, own_redis: RedisServer) -> EdgeServer:
    return make_edge((own_redis.address,), name=f"fault-{uuid.uuid4().hex[:6]}", **TIGHT)


def body_for(key: str) -> bytes:
    return json.dumps({"query": "mutation { act }", "variables": {"k": key}}).encode()


async def test_redis_killed_mid_run_loses_nothing(
    fault_edge: EdgeServer, own_redis: RedisServer, upstream: Upstream
) -> None:
    """Every key is sent, then retried (a client that did not see the first
    answer). Redis is SIGKILLed a third of the way through."""
    keys = [f"kill-{uuid.uuid4()}" for _ in range(300)]
    before = await edge_metrics(fault_edge)
    done = 0
    statuses: Counter[tuple[int, str]] = Counter()
    killed_at: int | None = None

    async def client(pool: RawHTTPPool, my_keys: list[str]) -> None:
        nonlocal done, killed_at
        for key in my_keys:
            headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
            first = await pool.post("/graphql", body_for(key), headers)
            again = await pool.post("/graphql", body_for(key), headers)
            statuses[(first.status, "first")] += 1
            statuses[(again.status, "retry")] += 1
            assert again.body == first.body, "a retry got another answer"
            done += 1
            if done == len(keys) // 3 and killed_at is None:
                own_redis.kill()
                killed_at = done

    async with RawHTTPPool(*fault_edge.config.listen_address, connections=20) as pool:
        await asyncio.gather(*(client(pool, keys[i::20]) for i in range(20)))

    assert killed_at is not None
    assert statuses == {(200, "first"): len(keys), (200, "retry"): len(keys)}, statuses
    after = await edge_metrics(fault_edge)
    delta = {name: after[name] - before.get(name, 0) for name in after}
    opened = fail_opens(after) - fail_opens(before)
    decided = (
        delta["herald_edge_claims_total"]
        + delta["herald_edge_replays_total"]
        + delta["herald_edge_conflicts_total"]
    )
    assert opened > 0, "no fail-open counted after Redis died"
    assert decided + opened == 2 * len(keys), "every request is counted once"

    stats = list((await upstream.stats_many(keys)).values())
    assert all(s["executions"] == 1 for s in stats), "a command ran twice"
    caught_by_app = sum(1 for s in stats if s["hits"] == 2)
    assert caught_by_app > 0, "after the kill, retries reach the app, which replays them"
    assert sum(s["hits"] for s in stats) == len(keys) + caught_by_app


async def test_redis_restarted_edge_resumes_claiming(
    fault_edge: EdgeServer, own_redis: RedisServer, upstream: Upstream
) -> None:
    host, port = fault_edge.config.listen_address
    async with RawHTTPPool(host, port, connections=4) as pool:
        own_redis.kill()
        before = await edge_metrics(fault_edge)
        for _ in range(5):
            key = f"down-{uuid.uuid4()}"
            response = await pool.post("/graphql", body_for(key), {"Idempotency-Key": key})
            assert response.status == 200
        during = await edge_metrics(fault_edge)
        assert fail_opens(during) - fail_opens(before) == 5
        assert during["herald_edge_claims_total"] == before["herald_edge_claims_total"]

        own_redis.start()
        # the edge only skips Redis for its back-off window (200 ms) after a failure
        deadline = time.monotonic() + 5
        while True:
            key = f"back-{uuid.uuid4()}"
            first = await pool.post("/graphql", body_for(key), {"Idempotency-Key": key})
            assert first.status == 200
            now = await edge_metrics(fault_edge)
            if now["herald_edge_claims_total"] > during["herald_edge_claims_total"]:
                break
            assert time.monotonic() < deadline, "the edge did not resume claiming"
            await asyncio.sleep(0.05)
        again = await pool.post("/graphql", body_for(key), {"Idempotency-Key": key})
        assert again.headers.get("idempotent-replayed") == "true"
        assert "x-upstream-replayed" not in again.headers, "the edge replayed it, not the app"
        assert await upstream.stats(key) == {"hits": 1, "executions": 1}


async def test_slow_redis_fails_open_within_the_timeout(
    fault_edge: EdgeServer, own_redis: RedisServer, upstream: Upstream
) -> None:
    """CLIENT PAUSE makes Redis hold every command: the edge waits its read
    timeout (100 ms) a few times, then skips Redis for the back-off window."""
    assert TIGHT["redis_read_timeout_ms"] == 100
    admin = own_redis.client()
    host, port = fault_edge.config.listen_address
    try:
        async with RawHTTPPool(host, port, connections=2) as pool:
            warm = f"warm-{uuid.uuid4()}"  # a pooled Redis connection in the edge
            await pool.post("/graphql", body_for(warm), {"Idempotency-Key": warm})
            before = await edge_metrics(fault_edge)
            await command(admin, "CLIENT", "PAUSE", "1000", "ALL")
            latencies = []
            keys = [f"slow-{uuid.uuid4()}" for _ in range(8)]
            for key in keys:
                started = time.monotonic()
                response = await pool.post("/graphql", body_for(key), {"Idempotency-Key": key})
                latencies.append(time.monotonic() - started)
                assert response.status == 200
            after = await edge_metrics(fault_edge)
    finally:
        await command(admin, "CLIENT", "UNPAUSE")  # waits for the pause to end
        await admin.aclose()
    stats = await upstream.stats_many(keys)
    assert all(s == {"hits": 1, "executions": 1} for s in stats.values()), stats
    print("\nlatencies with Redis paused (ms):", [round(x * 1000) for x in latencies])
    assert max(latencies) < 1.0, latencies  # bounded by the timeouts, not by the pause
    opened = {k: after[k] - before[k] for k in after if k.startswith("herald_edge_fail_opens")}
    assert opened['herald_edge_fail_opens_total{reason="redis_error"}'] >= 1
    assert sum(opened.values()) == 8

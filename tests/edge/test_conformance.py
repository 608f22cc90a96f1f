"""The IETF Idempotency-Key draft's cases, at the edge (one nginx, one Redis,
the counting upstream): 400 for an invalid key, 409 while in flight (202 on a
queued path), 422 for a different request with the same key, and a replay of
the original status, body and headers marked ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.redis import RedisServer
from edge import EdgeServer, redis_key
from tests.edge.support import Upstream, assert_problem, edge_metrics


def new_key() -> str:
    return f"conf-{uuid.uuid4()}"


async def wait_for_hits(upstream: Upstream, key: str, hits: int, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while (await upstream.stats(key))["hits"] < hits:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.01)


async def test_post_without_key_is_left_to_the_app(
    http: httpx.AsyncClient, upstream: Upstream, edge: EdgeServer
) -> None:
    before = await edge_metrics(edge)
    plain_before = (await upstream.stats())["plain"]
    for _ in range(2):
        response = await http.post("/graphql", json={"query": "{ ping }"})
        assert response.status_code == 200
        assert response.json() == {"path": "/graphql", "idempotent": False}
        assert "idempotent-replayed" not in response.headers
    assert (await upstream.stats())["plain"] == plain_before + 2
    after = await edge_metrics(edge)
    assert after["herald_edge_passthrough_total"] == before["herald_edge_passthrough_total"] + 2
    assert after["herald_edge_claims_total"] == before["herald_edge_claims_total"]


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 256, b"has space", b"tab\there", "cl\u00e9".encode(), b"\x7f"],
    ids=["empty", "256-chars", "space", "tab", "non-ascii", "del"],
)
async def test_invalid_key_gets_400_problem(
    http: httpx.AsyncClient, upstream: Upstream, value: bytes
) -> None:
    hits_before = (await upstream.stats())["hits"]
    response = await http.post(
        "/graphql", content=b'{"query":"mutation { x }"}', headers={b"Idempotency-Key": value}
    )
    assert_problem(response, "invalid")
    assert (await upstream.stats())["hits"] == hits_before, "an invalid key reached the app"


async def test_two_key_headers_get_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "mutation { x }"},
        headers=[("Idempotency-Key", "one"), ("Idempotency-Key", "two")],
    )
    assert_problem(response, "invalid")


async def test_longest_and_shortest_valid_keys_pass(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    for key in ("k", "~" * 255, f"!#$%&'*+-.^_`|~{uuid.uuid4()}"):
        response = await http.post("/graphql", json={"n": 1}, headers={"Idempotency-Key": key})
        assert response.status_code == 200, response.text
        assert (await upstream.stats(key))["hits"] == 1


async def test_replay_has_original_status_body_and_headers(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    headers = {"Idempotency-Key": key, "X-Test-Status": "201"}
    first = await http.post("/graphql", json={"query": "mutation { a }"}, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert first.headers["set-cookie"].startswith("session=")
    for _ in range(3):
        again = await http.post("/graphql", json={"query": "mutation { a }"}, headers=headers)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        for name in ("content-type", "location", "etag", "x-upstream-execution"):
            assert again.headers[name] == first.headers[name], name
        assert "set-cookie" not in again.headers, "a session cookie must not be replayed"
        assert "x-upstream-replayed" not in again.headers, "the app answered, not the edge"
    assert await upstream.stats(key) == {"hits": 1, "executions": 1}


async def test_same_json_written_differently_is_the_same_request(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    first = await http.post(
        "/graphql",
        content=b'{"query":"mutation { a }","variables":{"x":1,"y":"\\u00e9"}}',
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert first.status_code == 200
    again = await http.post(
        "/graphql",
        content='{ "variables" : { "y" : "é", "x" : 1 },\n "query" : "mutation { a }" }'.encode(),
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert (await upstream.stats(key))["hits"] == 1


async def test_non_json_body_is_fingerprinted_as_bytes(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    first = await http.post("/graphql", content=b"not json {", headers={"Idempotency-Key": key})
    again = await http.post("/graphql", content=b"not json {", headers={"Idempotency-Key": key})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = await http.post("/graphql", content=b"not json }", headers={"Idempotency-Key": key})
    assert_problem(other, "reused")
    assert (await upstream.stats(key))["hits"] == 1


async def test_in_flight_duplicate_gets_409_then_the_replay(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    headers = {"Idempotency-Key": key, "X-Test-Delay": "0.6"}
    first = asyncio.create_task(http.post("/graphql", json={"m": 1}, headers=headers))
    await wait_for_hits(upstream, key, 1)
    duplicate = await http.post("/graphql", json={"m": 1}, headers=headers)
    assert_problem(duplicate, "in_progress")
    assert duplicate.headers["retry-after"] == "1"
    # a different body while in flight is a misuse of the key: 422, not 409
    assert_problem(await http.post("/graphql", json={"m": 2}, headers=headers), "reused")
    original = await first
    assert original.status_code == 200
    replay = await http.post("/graphql", json={"m": 1}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == original.content
    assert await upstream.stats(key) == {"hits": 1, "executions": 1}


async def test_queued_path_answers_202_while_in_flight(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    headers = {"Idempotency-Key": key, "X-Test-Delay": "0.5", "X-Test-Status": "202"}
    first = asyncio.create_task(http.post("/queued", json={"job": 1}, headers=headers))
    await wait_for_hits(upstream, key, 1)
    duplicate = await http.post("/queued", json={"job": 1}, headers=headers)
    assert duplicate.status_code == 202
    assert duplicate.json()["code"] == "REQUEST_QUEUED"
    assert duplicate.headers["retry-after"] == "1"
    assert (await first).status_code == 202
    replay = await http.post("/queued", json={"job": 1}, headers=headers)
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert (await upstream.stats(key))["hits"] == 1


async def test_same_key_different_body_gets_422(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    assert (await http.post("/graphql", json={"a": 1}, headers={"Idempotency-Key": key})).is_success
    for body in ({"a": 2}, {"a": "1"}, {"a": 1, "b": None}, [1]):
        response = await http.post("/graphql", json=body, headers={"Idempotency-Key": key})
        assert_problem(response, "reused")
    # another path with the same key is another request too
    response = await http.post("/queued", json={"a": 1}, headers={"Idempotency-Key": key})
    assert_problem(response, "reused")
    assert (await upstream.stats(key))["hits"] == 1


async def test_keys_are_scoped_by_caller(http: httpx.AsyncClient, upstream: Upstream) -> None:
    key = new_key()
    answers = {}
    for caller in ("Bearer token-of-alice", "Bearer token-of-bob", None):
        headers = {"Idempotency-Key": key}
        if caller:
            headers["Authorization"] = caller
        first = await http.post("/graphql", json={"same": True}, headers=headers)
        again = await http.post("/graphql", json={"same": True}, headers=headers)
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        answers[caller] = first.json()["execution"]
    assert sorted(answers.values()) == [1, 2, 3], "each caller executed its own request"
    assert await upstream.stats(key) == {"hits": 3, "executions": 3}


async def test_5xx_is_not_stored_and_the_retry_runs(
    http: httpx.AsyncClient, upstream: Upstream, edge: EdgeServer
) -> None:
    key = new_key()
    before = await edge_metrics(edge)
    failed = await http.post(
        "/graphql", json={"x": 1}, headers={"Idempotency-Key": key, "X-Test-Status": "500"}
    )
    assert failed.status_code == 500
    retried = await http.post("/graphql", json={"x": 1}, headers={"Idempotency-Key": key})
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers
    replay = await http.post("/graphql", json={"x": 1}, headers={"Idempotency-Key": key})
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == retried.content
    assert await upstream.stats(key) == {"hits": 2, "executions": 2}
    after = await edge_metrics(edge)
    assert after["herald_edge_released_total"] == before["herald_edge_released_total"] + 1


async def test_record_lives_for_the_key_ttl_and_lock_for_the_lock_ttl(
    http: httpx.AsyncClient, upstream: Upstream, redis_server: RedisServer, edge: EdgeServer
) -> None:
    key = new_key()
    caller = "Bearer ttl-check"
    rkey = redis_key(key, caller)
    client = redis_server.client()
    try:
        headers = {"Idempotency-Key": key, "Authorization": caller, "X-Test-Delay": "0.4"}
        first = asyncio.create_task(http.post("/graphql", json={}, headers=headers))
        await wait_for_hits(upstream, key, 1)
        lock_ttl = await client.pttl(rkey)
        assert 0 < lock_ttl <= edge.config.lock_ttl_ms
        assert (await client.get(rkey) or b"")[:2] == b"L\n"
        await first
        stored_ttl = await client.pttl(rkey)
        assert stored_ttl > edge.config.key_ttl_ms - 60_000
        assert edge.config.key_ttl_ms >= 24 * 3600 * 1000
        assert (await client.get(rkey) or b"")[:2] == b"R\n"
    finally:
        await client.aclose()


async def test_large_response_is_stored_and_replayed(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    headers = {"Idempotency-Key": key, "X-Test-Body-Size": "300000"}
    first = await http.post("/graphql", json={"big": True}, headers=headers)
    assert first.status_code == 200 and len(first.content) > 300_000
    again = await http.post("/graphql", json={"big": True}, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert (await upstream.stats(key))["hits"] == 1


async def test_other_methods_and_paths_are_not_filtered(
    http: httpx.AsyncClient, upstream: Upstream
) -> None:
    key = new_key()
    for _ in range(2):
        response = await http.post("/elsewhere", json={}, headers={"Idempotency-Key": key})
        assert response.status_code == 200
    # both reached the app (whose own check replayed the second)
    assert await upstream.stats(key) == {"hits": 2, "executions": 1}
    key = new_key()
    for _ in range(2):
        response = await http.get("/graphql", headers={"Idempotency-Key": key})
        assert response.status_code == 200
    assert (await upstream.stats(key))["hits"] == 2


async def test_metrics_count_each_decision(
    http: httpx.AsyncClient, upstream: Upstream, edge: EdgeServer
) -> None:
    before = await edge_metrics(edge)
    key = new_key()
    slow = {"Idempotency-Key": key, "X-Test-Delay": "0.4"}
    first = asyncio.create_task(http.post("/graphql", json={"q": 1}, headers=slow))
    await wait_for_hits(upstream, key, 1)
    assert (await http.post("/graphql", json={"q": 1}, headers=slow)).status_code == 409
    assert (await http.post("/graphql", json={"q": 2}, headers=slow)).status_code == 422
    await first
    for _ in range(3):
        replay = await http.post("/graphql", json={"q": 1}, headers=slow)
        assert replay.headers["idempotent-replayed"] == "true"
    assert (
        await http.post("/graphql", json={}, headers={"Idempotency-Key": ""})
    ).status_code == 400
    after = await edge_metrics(edge)
    delta = {name: after[name] - before.get(name, 0) for name in after}
    assert delta["herald_edge_claims_total"] == 1
    assert delta["herald_edge_stored_total"] == 1
    assert delta["herald_edge_conflicts_total"] == 1
    assert delta["herald_edge_mismatches_total"] == 1
    assert delta["herald_edge_replays_total"] == 3
    assert delta["herald_edge_invalid_keys_total"] == 1
    assert sum(v for k, v in delta.items() if k.startswith("herald_edge_fail_opens")) == 0
    async with httpx.AsyncClient() as client:
        text = (await client.get(edge.metrics_url)).text
    assert "# TYPE herald_edge_fail_opens_total counter" in text
    assert 'herald_edge_fail_opens_total{reason="redis_error"}' in text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=json_values, seed=st.randoms(use_true_random=False))
def test_json_fingerprint_ignores_layout_but_not_content(
    edge: EdgeServer, value: object, seed: object
) -> None:
    """Any two serialisations of one JSON document are one request at the edge."""
    import random

    assert isinstance(seed, random.Random)

    def shuffled(v: object) -> object:
        if isinstance(v, dict):
            items = list(v.items())
            seed.shuffle(items)
            return {k: shuffled(x) for k, x in items}
        if isinstance(v, list):
            return [shuffled(x) for x in v]
        return v

    body_a = json.dumps({"variables": value}, sort_keys=True, separators=(",", ":"))
    body_b = json.dumps(
        {"variables": shuffled(value)},
        indent=seed.choice([None, 1, 3]),
        ensure_ascii=seed.choice([True, False]),
    )
    key = new_key()
    with httpx.Client(base_url=edge.base_url, timeout=10) as client:
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        first = client.post("/graphql", content=body_a.encode(), headers=headers)
        assert first.status_code == 200
        again = client.post("/graphql", content=body_b.encode(), headers=headers)
        assert again.status_code == 200, (body_a, body_b, again.text)
        assert again.headers.get("idempotent-replayed") == "true", (body_a, body_b)
        changed = json.dumps({"variables": value, "extra": 1})
        assert client.post("/graphql", content=changed.encode(), headers=headers).status_code == 422

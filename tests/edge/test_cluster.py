"""Redis Cluster mode against a real three-master cluster on loopback: the
Lua CRC16 agrees with CLUSTER KEYSLOT, each key is claimed on the master that
owns its slot (found from CLUSTER SLOTS, given one seed node), hash tags are
honoured, and MOVED / ASK redirections after a slot migration are followed.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from redis.exceptions import MovedError

from adapters.redis.generation import RedisPublicGeneration
from devstack.redis import RedisCluster, command
from edge import EdgeServer, redis_key
from tests.edge.conftest import EdgeFactory
from tests.edge.support import Upstream, edge_metrics

TAGGED_PREFIX = "{herald-edge}:idem:"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    redis_cluster = RedisCluster(masters=3)
    redis_cluster.start()
    yield redis_cluster
    redis_cluster.close()


@pytest.fixture(scope="module")
def cluster_edge(make_edge: EdgeFactory, cluster: RedisCluster) -> EdgeServer:
    # one seed: the edge learns the other masters from CLUSTER SLOTS
    return make_edge((cluster.addresses[0],), name="cluster", redis_cluster=True)


async def where_is(cluster: RedisCluster, rkey: str) -> list[str]:
    """The masters that hold ``rkey`` (asked one by one, no cluster routing)."""
    found = []
    for node in cluster.nodes:
        client = node.client()
        try:
            if await command(client, "EXISTS", rkey):
                found.append(node.address)
        except MovedError:  # a master that does not own the slot: not here
            pass
        finally:
            await client.aclose()
    return found


async def test_lua_crc16_matches_cluster_keyslot(
    cluster_edge: EdgeServer, cluster: RedisCluster
) -> None:
    rng = random.Random(6)
    alphabet = string.ascii_letters + string.digits + "{}:._-/ "
    keys = [
        "foo", "bar", "", "{", "}", "{}", "{}x", "a{b", "a}b{c",
        "{user1000}.following", "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap",
        "foo{bar}{zap}", "{herald-edge}:idem:x", "herald:idem:anonymous:" + "0" * 64,
        "clé", "ключ{тег}",
        *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(500)),
    ]  # fmt: skip
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{cluster_edge.status_url}/edge-keyslot",
            content="".join(f"{k}\n" for k in keys).encode(),
        )
    response.raise_for_status()
    lua_slots = [int(line) for line in response.text.split()]
    assert len(lua_slots) == len(keys)
    assert lua_slots[0] == 12182  # redis-cli cluster keyslot foo
    redis_client = cluster.nodes[0].client()
    try:
        pipe = redis_client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("CLUSTER", "KEYSLOT", key)  # type: ignore[no-untyped-call]
        redis_slots = [int(s) for s in await pipe.execute()]
    finally:
        await redis_client.aclose()
    mismatches = [(k, a, b) for k, a, b in zip(keys, lua_slots, redis_slots, strict=True) if a != b]
    assert not mismatches


async def test_keys_are_claimed_on_the_owning_master(
    cluster_edge: EdgeServer, cluster: RedisCluster, upstream: Upstream
) -> None:
    host, port = cluster_edge.config.listen_address
    per_master: Counter[str] = Counter()
    keys = []
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as http:
        for i in range(30):
            key = f"cluster-{uuid.uuid4()}"
            keys.append(key)
            caller = f"Bearer caller-{i % 3}"
            headers = {"Idempotency-Key": key, "Authorization": caller}
            first = await http.post("/graphql", json={"i": i}, headers=headers)
            again = await http.post("/graphql", json={"i": i}, headers=headers)
            assert first.status_code == 200
            assert again.headers["idempotent-replayed"] == "true"
            assert again.content == first.content
            rkey = redis_key(key, caller)
            owner = await cluster.slot_owner(await cluster.keyslot(rkey))
            assert await where_is(cluster, rkey) == [owner]
            per_master[owner] += 1
    assert set(per_master) == set(cluster.addresses), "keys spread over all three masters"
    stats = await upstream.stats_many(keys)
    assert all(s == {"hits": 1, "executions": 1} for s in stats.values())
    metrics = await edge_metrics(cluster_edge)
    assert metrics["herald_edge_cluster_slot_refreshes_total"] >= 1
    assert sum(v for k, v in metrics.items() if k.startswith("herald_edge_fail_opens")) == 0


async def test_hash_tag_in_the_prefix_keeps_keys_on_one_master(
    make_edge: EdgeFactory, cluster: RedisCluster
) -> None:
    tagged = make_edge(
        (cluster.addresses[1],), name="cluster-tagged", redis_cluster=True, key_prefix=TAGGED_PREFIX
    )
    owner = await cluster.slot_owner(await cluster.keyslot("herald-edge"))
    async with httpx.AsyncClient(base_url=tagged.base_url, timeout=10) as http:
        for i in range(12):
            key = f"tagged-{uuid.uuid4()}"
            response = await http.post("/graphql", json={"i": i}, headers={"Idempotency-Key": key})
            assert response.status_code == 200
            assert await where_is(cluster, redis_key(key, None, TAGGED_PREFIX)) == [owner]


async def _node_ids(cluster: RedisCluster) -> dict[str, str]:
    client = cluster.nodes[0].client()
    try:
        text = await command(client, "CLUSTER", "NODES")
    finally:
        await client.aclose()
    text = text.decode() if isinstance(text, bytes) else str(text)
    ids = {}
    for line in text.splitlines():
        node_id, address = line.split()[:2]
        ids[address.split("@")[0]] = node_id
    return ids


async def _setslot(cluster: RedisCluster, address: str, *args: str | int) -> None:
    client = cluster.node_at(address).client()
    try:
        await command(client, "CLUSTER", "SETSLOT", *args)
    finally:
        await client.aclose()


async def test_moved_and_ask_redirections_are_followed(
    cluster_edge: EdgeServer, cluster: RedisCluster
) -> None:
    """Migrate two slots by hand: while a slot is MIGRATING the old owner
    answers ASK; once moved it answers MOVED. The edge's cached slot map is
    stale both times and must follow the redirection."""
    ids = await _node_ids(cluster)
    async with httpx.AsyncClient(base_url=cluster_edge.base_url, timeout=10) as http:
        warm = await http.post("/graphql", json={}, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert warm.status_code == 200  # the slot map is cached now
        before = await edge_metrics(cluster_edge)

        async def migrate_and_send(finish: bool) -> tuple[str, str, str]:
            key = f"migrate-{uuid.uuid4()}"
            rkey = redis_key(key)
            slot = await cluster.keyslot(rkey)
            source = await cluster.slot_owner(slot)
            target = next(a for a in cluster.addresses if a != source)
            await _setslot(cluster, target, slot, "IMPORTING", ids[source])
            await _setslot(cluster, source, slot, "MIGRATING", ids[target])
            if finish:  # the slot has no keys yet: nothing to MIGRATE
                for address in cluster.addresses:
                    await _setslot(cluster, address, slot, "NODE", ids[target])
            body = json.dumps({"finish": finish})
            first = await http.post("/graphql", content=body, headers={"Idempotency-Key": key})
            again = await http.post("/graphql", content=body, headers={"Idempotency-Key": key})
            assert first.status_code == 200
            assert again.headers["idempotent-replayed"] == "true"
            if not finish:
                for address in cluster.addresses:
                    await _setslot(cluster, address, slot, "NODE", ids[target])
            return rkey, source, target

        rkey, _source, target = await migrate_and_send(finish=False)
        assert await where_is(cluster, rkey) == [target]
        mid = await edge_metrics(cluster_edge)
        assert (
            mid['herald_edge_cluster_redirects_total{kind="ask"}']
            > before['herald_edge_cluster_redirects_total{kind="ask"}']
        )

        rkey, _source, target = await migrate_and_send(finish=True)
        assert await where_is(cluster, rkey) == [target]
        after = await edge_metrics(cluster_edge)
        assert (
            after['herald_edge_cluster_redirects_total{kind="moved"}']
            > mid['herald_edge_cluster_redirects_total{kind="moved"}']
        )
        assert (
            after["herald_edge_cluster_slot_refreshes_total"]
            > mid["herald_edge_cluster_slot_refreshes_total"]
        )
        assert sum(v for k, v in after.items() if k.startswith("herald_edge_fail_opens")) == 0


async def test_the_apps_cache_generation_lands_on_the_master_owning_its_slot(
    cluster: RedisCluster,
) -> None:
    """HERALD_EDGE_REDIS_CLUSTER: the app's generation, given one seed, is
    routed by slot like the edge's reads (test_lua_crc16_matches_cluster_keyslot)."""
    key = f"herald:edge:generation:{uuid.uuid4().hex[:8]}"
    generation = RedisPublicGeneration(
        f"redis://{cluster.addresses[-1]}/0", key, cluster=True, timeout_seconds=2.0
    )
    try:
        await generation.advance()
        assert generation.current is not None
        (owner,) = await where_is(cluster, key)
        client = next(n for n in cluster.nodes if n.address == owner).client()
        try:
            assert (await command(client, "GET", key)).decode() == generation.current
        finally:
            await client.aclose()
    finally:
        await generation.close()

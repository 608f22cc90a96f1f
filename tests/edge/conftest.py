"""Fixtures of the edge suite: real nginx (Debian's, with the Lua module and
``nginx.redis``), real redis-server, a real upstream (tests/edge/upstream.py
under uvicorn), real HTTP on 127.0.0.1. Nothing is mocked and nothing skips:
when a binary is missing the suite fails and says how to install it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.process import ManagedProcess, free_port, run_sync
from devstack.redis import RedisServer, redis_binaries
from edge import EdgeConfig, EdgeServer, missing_components
from edge.server import INSTALL_HINT, http_get
from tests.edge.support import Upstream

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def edge_packages() -> None:
    """Fail (never skip) the whole edge suite when the packages are missing."""
    missing = missing_components()
    try:
        redis_binaries()
    except Exception as exc:  # StartupError with the hint
        missing.append(str(exc))
    if missing:
        pytest.fail(f"edge tests need: {'; '.join(missing)}. {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    port = free_port()
    process = ManagedProcess(
        f"edge-upstream-{port}",
        [sys.executable, "-m", "tests.edge.upstream", "--port", str(port)],
        tmp_path_factory.mktemp("upstream"),
        cwd=REPO,
    )
    process.start()

    async def healthy() -> None:
        status, _ = await http_get("127.0.0.1", port, "/_health")
        assert status == 200

    try:
        run_sync(lambda: process.wait_ready(port, healthy, timeout=30))
    except BaseException:
        process.kill()
        raise
    yield Upstream(process, port)
    process.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, so killing it disturbs no one else."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


EdgeFactory = Callable[..., EdgeServer]


@pytest.fixture(scope="module")
def make_edge(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeFactory]:
    """Start edges in front of the upstream; all stopped when the module ends."""
    started: list[EdgeServer] = []

    def make(redis_nodes: tuple[str, ...], **overrides: Any) -> EdgeServer:
        name = overrides.pop("name", f"edge{len(started) + 1}")
        settings: dict[str, Any] = {
            "name": name,
            "listen": f"127.0.0.1:{free_port()}",
            "status_listen": f"127.0.0.1:{free_port()}",
            "upstreams": (upstream.address,),
            "redis_nodes": redis_nodes,
            "paths": ("/graphql", "/queued"),
            "queued_paths": ("/queued",),
            "worker_processes": 2,
            # Functional tests must not fail open because the 2-core box is
            # busy for 100 ms; the fault tests use the tight defaults.
            "redis_connect_timeout_ms": 1000,
            "redis_read_timeout_ms": 1000,
            **overrides,
        }
        server = EdgeServer(EdgeConfig(**settings), tmp_path_factory.mktemp(f"nginx-{name}"))
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def edge(make_edge: EdgeFactory, redis_server: RedisServer) -> EdgeServer:
    return make_edge((redis_server.address,), name="main")


@pytest.fixture
async def http(edge: EdgeServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=30) as client:
        yield client

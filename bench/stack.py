"""The stack every benchmark runs on: SecantusDB (a data folder, durable
commits), Apache Kafka 4 or Tansu on loopback, a dev token issuer and one
whole Herald (API, relay, projectors) served in this process — started and
stopped as one, so each benchmark states only what it measures."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.auth.dev_issuer import DevIssuer
from devstack.herald import RunningHerald
from devstack.process import free_port
from devstack.redis import RedisServer
from devstack.secantus import SecantusServer
from domain.commands import CommandContext
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, Principal
from edge import EdgeConfig, EdgeServer
from settings import Settings

BROKERS = ("kafka", "tansu")
# Commands sent through the handlers in process: four eyes, so two subjects.
OPERATOR = CommandContext(Principal(subject="bench", roles=frozenset({ROLE_OPERATOR})), "bench")
APPROVER = CommandContext(
    Principal(subject="bench-approver", roles=frozenset({ROLE_APPROVER})), "bench"
)


@dataclass(frozen=True)
class BenchStack:
    work: Path
    store: SecantusServer
    broker_name: str
    bootstrap_servers: str
    issuer: DevIssuer
    settings: Settings
    herald: RunningHerald


def add_stack_arguments(parser: argparse.ArgumentParser, *, broker: str = "kafka") -> None:
    parser.add_argument("--broker", choices=BROKERS, default=broker)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")


@asynccontextmanager
async def bench_stack(
    prefix: str, *, broker: str = "kafka", keep: bool = False, **settings: Any
) -> AsyncIterator[BenchStack]:
    """Start the stack in a fresh work folder; `settings` override Herald's."""
    work = Path(tempfile.mkdtemp(prefix=f"herald-bench-{prefix}-"))
    async with AsyncExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        store = SecantusServer(work / "store", sync_on_commit=True)
        await store.start_async()
        stack.callback(store.stop)
        if broker == "kafka":
            from devstack.apache_kafka import ApacheKafkaBroker

            running: Any = ApacheKafkaBroker(work / "kafka")
        else:
            from devstack.tansu import TansuBroker

            running = TansuBroker(log_dir=work)
        await running.start_async()
        stack.callback(running.stop)
        issuer = DevIssuer(work / "issuer")
        herald_settings = Settings(
            port=free_port(),
            mongo_uri=store.uri,
            mongo_database="herald",
            kafka_bootstrap=running.bootstrap_servers,
            kafka_idempotent_producer=broker == "kafka",
            jwks_location=str(issuer.jwks_path),
            jwt_issuer=issuer.issuer,
            jwt_audience=issuer.audience,
            relay_poll_seconds=0.05,
        ).with_overrides(**settings)
        herald = await stack.enter_async_context(RunningHerald(herald_settings, issuer))
        yield BenchStack(
            work, store, broker, running.bootstrap_servers, issuer, herald_settings, herald
        )


@contextmanager
def edge_in_front(herald: RunningHerald, *, name: str, workers: int) -> Iterator[EdgeServer]:
    """A redis-server and one nginx edge (`workers` processes, a status
    listener) in front of `herald`'s port, in a work folder of their own."""
    with tempfile.TemporaryDirectory(prefix=f"herald-bench-{name}-") as tmp:
        redis_server = RedisServer()
        edge = EdgeServer(
            EdgeConfig(
                name=name,
                listen=f"127.0.0.1:{free_port()}",
                status_listen=f"127.0.0.1:{free_port()}",
                upstreams=(f"127.0.0.1:{herald.settings.port}",),
                redis_nodes=(f"127.0.0.1:{redis_server.port}",),
                worker_processes=workers,
            ),
            Path(tmp) / "nginx",
        )
        try:
            redis_server.start()
            edge.start()
            yield edge
        finally:
            edge.stop()
            redis_server.close()


async def settled(herald: RunningHerald) -> None:
    """Wait until the outbox is drained and every projector consumed everything."""
    while await herald.behind():  # noqa: ASYNC110 - polls the store and the broker
        await asyncio.sleep(0.02)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (with fewer than 100 samples p99 is the maximum)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]

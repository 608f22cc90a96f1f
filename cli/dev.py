"""`herald dev`: the whole system on the embedded default, in one terminal.

Starts SecantusDB (storing under DATA_DIR/store) and a broker — Tansu by
default, or Apache Kafka 4 with `--broker kafka` (storing under
DATA_DIR/kafka) — then the API with the outbox relay and the projectors;
waits until /readyz says ready and prints the GraphQL URL. Ctrl-C stops
everything. Tansu keeps its log in memory: on a restart the topics are new,
and the relay re-publishes the durable record from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import uvicorn

from adapters.auth.dev_issuer import DevIssuer
from app import create_app
from devstack.process import free_port
from settings import Settings

if TYPE_CHECKING:
    from devstack.mail_sink import MailSink

log = logging.getLogger("herald.dev")


def run_dev(*, port: int, host: str, data_dir: Path, broker: str, edge: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "aiokafka"):  # their INFO lines drown Herald's own
        logging.getLogger(noisy).setLevel(logging.WARNING)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if edge:
        from edge.dev import edge_available

        if not edge_available():
            print("herald dev --edge needs nginx, its Lua module and Redis:")
            print("  run scripts/install-edge-packages")
            return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(port=port, host=host, data_dir=data_dir, broker=broker, edge=edge))
    return 0


async def _run(*, port: int, host: str, data_dir: Path, broker: str, edge: bool) -> None:
    from devstack.secantus import SecantusServer

    started = time.monotonic()
    issuer = DevIssuer(data_dir)
    issuer.public_jwks()  # creates the dev key on first use
    store = SecantusServer(data_dir / "store", log_dir=data_dir / "logs")
    print(f"starting SecantusDB (data in {store.data_dir}) …", flush=True)
    await store.start_async()
    event_log = _broker(broker, data_dir)
    stack = contextlib.ExitStack()
    try:
        print(f"starting {broker} broker …", flush=True)
        await event_log.start_async()
        # With the edge, nginx takes the public port and the API an internal one.
        api_port = free_port() if edge else port
        settings = Settings.from_env()
        mail = _mail_sink(settings, data_dir)
        if mail is not None:
            stack.callback(mail.stop)
        settings = settings.with_overrides(
            host=host,
            port=api_port,
            mongo_uri=store.uri,
            kafka_bootstrap=event_log.bootstrap_servers,
            kafka_idempotent_producer=broker == "kafka",
            jwks_location=str(issuer.jwks_path),
            jwt_issuer=issuer.issuer,
            jwt_audience=issuer.audience,
            **({} if mail is None else {"smtp_url": mail.url}),
        )
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host=host, port=api_port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        await _wait_ready(f"http://{host}:{api_port}", serving)
        base = f"http://{host}:{port}"
        if edge:
            from edge.dev import DevEdge

            front = DevEdge(api_port, listen_port=port, log_dir=data_dir / "logs" / "edge")
            await asyncio.to_thread(front.start)
            stack.callback(front.stop)
            print(f"idempotency edge on {base} (metrics: {front.metrics_url})", flush=True)
        print(
            f"Herald is ready in {time.monotonic() - started:.1f}s: GraphQL at {base}/graphql\n"
            f"  tokens: herald token --data-dir {data_dir} --sub alice "
            "--roles ca-operator\n"
            + (
                ""
                if mail is None
                else f"  e-mails Herald sends: {mail.folder}/*.eml (SMTP sink on {mail.url})\n"
            )
            + "  Ctrl-C stops everything.",
            flush=True,
        )
        await serving
    finally:
        print("stopping …", flush=True)
        stack.close()
        event_log.stop()
        store.stop()


def _mail_sink(settings: Settings, data_dir: Path) -> MailSink | None:
    """Unless HERALD_SMTP_URL names a server: a local SMTP sink keeping each
    e-mail as an .eml file under DATA_DIR/mail, so a newcomer sees what Herald sends."""
    if settings.smtp_url or not settings.run_dispatcher:
        return None
    from devstack.mail_sink import MailSink

    sink = MailSink(data_dir / "mail")
    sink.start()
    return sink


def _broker(kind: str, data_dir: Path):  # type: ignore[no-untyped-def]
    if kind == "kafka":
        from devstack.apache_kafka import ApacheKafkaBroker

        return ApacheKafkaBroker(data_dir / "kafka")
    from devstack.tansu import TansuBroker

    return TansuBroker(log_dir=data_dir / "logs")


async def _wait_ready(base: str, serving: asyncio.Task[None], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if serving.done():
                serving.result()
                raise RuntimeError("the API stopped during start-up")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(f"{base}/readyz")
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"Herald did not become ready within {timeout:.0f}s; see the log above")

"""`herald dev`: the whole system on the embedded default, in one terminal.

Starts SecantusDB (storing under DATA_DIR/store) and a broker — Tansu by
default, or Apache Kafka 4 with `--broker kafka` (storing under
DATA_DIR/kafka) — then the API with the outbox relay and the projectors;
waits until /readyz says ready and prints the GraphQL URL. Ctrl-C or SIGTERM
stops everything. Tansu keeps its log in memory: on a restart the topics are
new, and the relay re-publishes the durable record from the store. A store
or broker child that dies is restarted with backoff (devstack/supervisor.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import uvicorn

from adapters.auth.dev_issuer import DevIssuer
from app import create_app
from cli.preflight import EXIT_UNREACHABLE
from devstack.process import free_port
from devstack.supervisor import Child, Supervisor
from observability.logs import configure_logging
from services import Services
from settings import Settings

if TYPE_CHECKING:
    from devstack.mail_sink import MailSink

log = logging.getLogger("herald.dev")


def run_dev(
    *,
    port: int,
    host: str,
    data_dir: Path,
    broker: str,
    edge: bool = False,
    traces: Path | None = None,
) -> int:
    configure_logging(Settings.from_env().log_format or "console")
    # Their INFO lines drown Herald's own (mail.log: the dev mail sink's
    # aiosmtpd, a dozen connection lines per e-mail).
    for noisy in ("httpx", "aiokafka", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()  # --port 0: any free port, named in the banner
    if not _port_free(host, port):  # else another server's /readyz would pass for ours
        print(
            f"herald dev: {host}:{port} is in use (another herald dev?): stop it, "
            "or pass another --port (0: any free port)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    if edge:
        from edge.dev import edge_available

        if not edge_available():
            print("herald dev --edge needs nginx, its Lua module and Redis:")
            print("  run scripts/install-edge-packages")
            return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _run(port=port, host=host, data_dir=data_dir, broker=broker, edge=edge, traces=traces)
        )
    return 0


async def _run(
    *, port: int, host: str, data_dir: Path, broker: str, edge: bool, traces: Path | None
) -> None:
    from devstack.secantus import SecantusServer

    started = time.monotonic()
    stopping = _SigtermStops()
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
        front = None
        if edge:
            from edge.dev import DevEdge

            # before the API: its Redis gets the edge cache's generation (edge/README.md)
            front = DevEdge(
                api_port,
                listen_port=port,
                log_dir=data_dir / "logs" / "edge",
                max_body_bytes=settings.max_body_bytes,
            )
            await asyncio.to_thread(front.start)
            stack.callback(front.stop)
            settings = settings.with_overrides(edge_redis_url=front.redis_url)
        if traces is not None:  # before Services: PyMongo traces clients made afterwards
            _trace_to(settings, traces)
        services = Services(settings)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, services),
                host=host,
                port=api_port,
                log_level="warning",
                log_config=None,  # through Herald's handler (format, redaction)
            )
        )
        serving = asyncio.create_task(server.serve())
        stopping.server = server
        await _wait_ready(f"http://{host}:{api_port}", serving, server)
        supervisor = Supervisor(
            [
                Child("SecantusDB", store),
                Child(
                    f"{broker} broker",
                    event_log,
                    on_restart=lambda: _refill(services, memory_only=broker != "kafka"),
                ),
            ]
        )
        supervising = asyncio.create_task(supervisor.run(), name="supervisor")
        stack.callback(supervising.cancel)
        base = f"http://{host}:{port}"
        if front is not None:
            print(f"idempotency edge on {base} (metrics: {front.metrics_url})", flush=True)
        print(
            _banner(time.monotonic() - started, base, host, port, data_dir, mail, store.uri),
            flush=True,
        )
        await serving
    finally:
        print("stopping …", flush=True)
        stack.close()
        event_log.stop()
        store.stop()


class _SigtermStops:
    """SIGTERM stops like Ctrl-C: the API shuts down gracefully, then every
    child is stopped in order. (uvicorn re-raises the signals it caught once
    it has shut down; with the default SIGTERM action that killed this
    process before its clean-up.) Before the API runs, the start is cancelled."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        main = asyncio.current_task()
        assert main is not None
        self._main = main
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._stop)

    def _stop(self) -> None:
        if self.server is None:
            self._main.cancel()
        else:
            self.server.should_exit = True


async def _refill(services: Services, *, memory_only: bool) -> None:
    """A broker that came back: create the topics again and, if it came back
    empty, queue what some projection has not applied for the relay to
    re-publish. Tansu (`memory_only`) always comes back empty, even if a
    publish already re-created a topic; the decision is stored first, so a
    crash mid-way re-fills on the next start (Services.prepare_log). Retried
    while the store or the broker fails: the supervisor runs this once."""
    queued = await services.prepare_log_retrying(emptied=memory_only)
    if queued is not None:
        log.info("the broker came back empty: re-publishing %d recorded events", queued)


def _banner(
    seconds: float,
    base: str,
    host: str,
    port: int,
    data_dir: Path,
    mail: MailSink | None,
    store_uri: str,
) -> str:
    """The ready line and commands that paste as they are: this install's
    `herald`, the same data folder (its dev issuer signs the tokens), this port."""
    herald = Path(sys.executable).with_name("herald")
    cli = shlex.quote(str(herald)) if herald.exists() else "herald"
    where = f"--port {port} --data-dir {shlex.quote(str(data_dir))}"
    if host != "127.0.0.1":
        where += f" --host {shlex.quote(host)}"
    folder = shlex.quote(str(data_dir))
    return (
        f"Herald is ready in {seconds:.1f}s:\n"
        f"  GraphQL (GraphiQL in a browser)  {base}/graphql\n"
        f"  health, readiness, metrics       {base}/healthz  /readyz  /metrics\n"
        f"  walk-through:  {cli} demo {where}\n"
        f"  a token:       {cli} token --data-dir {folder} --sub olga --roles ca-operator\n"
        f"  dead letters:  HERALD_MONGO_URI={shlex.quote(store_uri)} {cli} dlq list\n"
        + (
            ""
            if mail is None
            else f"  e-mails Herald sends: {mail.folder}/*.eml (SMTP sink on {mail.url})\n"
        )
        + "  Ctrl-C stops everything."
    )


def _trace_to(settings: Settings, path: Path) -> None:
    from observability.trace_file import JsonLinesSpanExporter
    from observability.tracing import configure_tracing

    configure_tracing(settings, exporter=JsonLinesSpanExporter(path.resolve()))
    print(f"spans go to {path} as JSON lines: `herald trace ID` prints one trace", flush=True)


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


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as uvicorn binds: a crashed run's TIME-WAIT connections do not hold the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def _wait_ready(
    base: str, serving: asyncio.Task[None], server: uvicorn.Server, timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if serving.done():
                serving.result()
                raise RuntimeError("the API stopped during start-up")
            if not server.started:  # its socket is not bound yet: nothing of ours answers
                await asyncio.sleep(0.2)
                continue
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(f"{base}/readyz")
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"Herald did not become ready within {timeout:.0f}s; see the log above")

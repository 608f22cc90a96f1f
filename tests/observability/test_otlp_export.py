"""A `herald serve` + `herald worker` pair, configured for traces only by the
OpenTelemetry SDK's standard variables (OTEL_TRACES_EXPORTER,
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES),
exports one approval's trace to an OTLP/HTTP receiver on loopback (decoded
with opentelemetry-proto): the API's server span down to the worker's SMTP
send, one unbroken parent chain across both processes and Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.auth.dev_issuer import DevIssuer
from adapters.channels.email import SMTP_SPAN
from adapters.mongo.client import connect
from adapters.mongo.preferences import PREFERENCES
from devstack.mail_sink import MailSink
from devstack.process import ManagedProcess, free_port
from observability import trace_context, tracing
from settings import Settings
from tests.delivery.support import MOBILE, depositor, fresh
from tests.observability.otlp_receiver import OtlpReceiver, Received, otlp_receiver
from tests.projections.scenario import Portal
from tests.support import (
    HERALD,
    REPO,
    Broker,
    GraphQLClient,
    eventually,
    herald_settings,
    worker_env,
)


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[OtlpReceiver]]]:
    """An OTLP/HTTP receiver on loopback: every span it was sent, decoded."""
    with otlp_receiver() as served:
        yield served


def base_env(s: Settings) -> dict[str, str]:
    """Where the pair finds its store, broker and issuer (HERALD_*)."""
    return {**worker_env(s), "HERALD_RELAY_POLL_SECONDS": "0.05"}


def otel_env(endpoint: str, service: str) -> dict[str, str]:
    """Tracing, by the standard variables only."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=otlp-test,team=ca",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # the batch processor's delay (ms), for a short test
        "HERALD_OTEL_EXPORTER": "",  # the deprecated alias stays out of it
    }


async def test_serve_and_worker_export_one_trace_over_otlp(
    apache_kafka: Any,
    mongo_uri: str,
    issuer: DevIssuer,
    receiver: tuple[str, type[OtlpReceiver]],
    tmp_path: Path,
) -> None:
    endpoint, received = receiver
    mail = MailSink()
    mail.start()
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    settings = herald_settings(broker, mongo_uri, issuer)
    port = free_port()
    serve = ManagedProcess(
        "serve",
        [str(HERALD), "serve"],
        tmp_path,
        env={
            **base_env(settings),
            **otel_env(endpoint, "herald-api"),
            "HERALD_PORT": str(port),
            "HERALD_RUN_PROJECTORS": "false",
            "HERALD_RUN_DISPATCHER": "false",
        },
        cwd=REPO,
    )
    worker = ManagedProcess(
        "worker",
        [str(HERALD), "worker"],
        tmp_path,
        env={
            **base_env(settings),
            **otel_env(endpoint, "herald-worker"),
            "HERALD_SMTP_URL": mail.url,
        },
        cwd=REPO,
    )
    store = connect(mongo_uri)
    db = store[settings.mongo_database]
    try:
        serve.start()
        worker.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def healthy() -> int:
                assert serve.is_running, serve.log_tail()
                assert worker.is_running, worker.log_tail()
                try:
                    return (await http.get("/healthz")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(healthy, lambda status: status == 200)
            api = GraphQLClient(http, issuer)
            account = fresh("otlp")
            await api.data(
                MOBILE,
                {"input": {"accountId": account, "channels": ["EMAIL"], "email": "a@example.com"}},
                token=depositor(api, account),
                operation_name="MobileSetPreferences",
            )
            portal = Portal(api)
            action_id = await portal.announce(reference=f"RU-OTLP-{uuid.uuid4().hex[:8]}")
            await portal.positions({account: "100"})
            await eventually(
                lambda: db[PREFERENCES].count_documents({"_id": account}), lambda n: n == 1
            )
            await portal.approve(action_id, 1)

            async def sent() -> int:
                return len(mail.messages)

            await eventually(sent, lambda n: n == 1)

        def approval() -> list[Received]:
            return [
                s
                for s in received.spans
                if s.name == tracing.COMMAND_SPAN
                and s.attributes.get(tracing.ATTR_COMMAND) == "approve"
                and s.attributes.get(tracing.ATTR_AGGREGATE_ID) == action_id
            ]

        async def smtp_sends() -> list[Received]:
            commands = approval()
            return [
                s
                for s in received.spans
                if commands and s.name == SMTP_SPAN and s.trace_id == commands[0].trace_id
            ]

        [smtp] = await eventually(smtp_sends, lambda found: len(found) == 1)
        [command] = approval()
    finally:
        serve.stop()
        worker.stop()
        mail.stop()
        await store.drop_database(settings.mongo_database)
        await store.close()

    assert {path for path, _, _ in received.requests} == {"/v1/traces"}
    by_id = {s.span_id: s for s in received.spans if s.trace_id == command.trace_id}
    chain = [smtp]
    while chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    names = [(s.service, s.name) for s in chain]
    top = chain[-1]
    assert (top.service, top.name, top.parent_id) == ("herald-api", "POST /graphql", ""), names
    assert command in chain
    assert smtp.service == "herald-worker"
    # the hops of the other process: the worker's projector and dispatcher record spans
    processed = [
        s.attributes.get(trace_context.ATTR_PROJECTION)
        for s in chain
        if s.name.startswith("process ")
    ]
    assert processed == ["dispatcher", "notices"], names
    assert {s.service for s in chain} == {"herald-api", "herald-worker"}
    assert smtp.resource["deployment.environment.name"] == "otlp-test"
    assert smtp.resource["team"] == "ca"

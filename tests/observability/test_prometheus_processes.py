"""Debian's Prometheus scrapes a `herald serve` (API and relay, no projectors)
and a `herald worker` (projectors, its own probe port) as two jobs, with
deploy/alerts.yml loaded (a copy whose `for:` is one second): each process's
own metrics come through its own target — the API's commands, Idempotency-Key
outcomes and GraphQL latency, the worker's projected events and notices by
kind — and when the worker is SIGKILLed while commands keep coming,
HeraldProjectorMissing fires for the notices projection."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from adapters.auth.dev_issuer import DevIssuer
from devstack.process import ManagedProcess, free_port
from tests.observability.conftest import ANNOUNCE
from tests.observability.promtools import PrometheusServer
from tests.observability.test_deploy_config import DEPLOY
from tests.support import DIVIDEND, HERALD, Broker, GraphQLClient, herald_settings, worker_env

POSITIONS = """
mutation Positions($input: RecordPositionsInput!) {
  recordPositions(input: $input) { consistencyToken }
}
"""
APPROVE = """
mutation Approve($input: ApprovePublicationInput!) {
  approvePublication(input: $input) { consistencyToken }
}
"""


async def _ready(url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        (await http.get(url)).raise_for_status()


def fast_rules(workdir: Path) -> Path:
    """deploy/alerts.yml with every `for:` one second."""
    rules = workdir / "alerts.yml"
    rules.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 1s", (DEPLOY / "alerts.yml").read_text()))
    return rules


async def announce(api: GraphQLClient, token: str) -> str:
    reference = f"RU-PROM-{uuid.uuid4().hex[:8]}"
    data = await api.data(ANNOUNCE, {"input": {**DIVIDEND, "reference": reference}}, token=token)
    return str(data["announceCorporateAction"]["corporateAction"]["id"])


async def firing(prometheus: PrometheusServer, alert: str) -> list[dict[str, Any]]:
    return await prometheus.query(f'ALERTS{{alertname="{alert}", alertstate="firing"}}')


async def test_prometheus_scrapes_api_and_worker_and_alerts_when_the_projector_stops(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer, tmp_path: Path
) -> None:
    settings = herald_settings(tansu_broker, mongo_uri, issuer)
    metrics_port = free_port()
    env = worker_env(settings)
    api_env = {
        **env,
        "HERALD_PORT": str(settings.port),
        "HERALD_RELAY_POLL_SECONDS": "0.05",
        "HERALD_RUN_PROJECTORS": "false",
        "HERALD_RUN_DISPATCHER": "false",
    }
    server = ManagedProcess("herald", [str(HERALD), "serve"], tmp_path, env=api_env)
    worker = ManagedProcess(
        "worker",
        [str(HERALD), "worker", "--metrics-port", str(metrics_port)],
        tmp_path,
        env=env,
    )
    api_address, worker_address = f"127.0.0.1:{settings.port}", f"127.0.0.1:{metrics_port}"
    (tmp_path / "prometheus").mkdir()
    prometheus = PrometheusServer(
        tmp_path / "prometheus",
        {"herald": (api_address, "/metrics"), "herald-worker": (worker_address, "/metrics")},
        rules=fast_rules(tmp_path),
    )
    async with running(server, worker, prometheus):
        await server.wait_ready(
            settings.port, lambda: _ready(f"http://{api_address}/readyz"), timeout=90
        )
        await worker.wait_ready(
            metrics_port, lambda: _ready(f"http://{worker_address}/readyz"), timeout=90
        )
        await prometheus.start()
        async with httpx.AsyncClient(base_url=f"http://{api_address}", timeout=30) as http:
            api = GraphQLClient(http, issuer)
            olga, ivan = api.token("olga", "ca-operator"), api.token("ivan", "ca-approver")
            action = await announce(api, olga)
            await api.data(APPROVE, {"input": {"id": action, "version": 1}}, token=ivan)
            holdings = [{"accountId": "ACC-PROM-1", "quantity": "10", "taxRatePercent": "13"}]
            positions = {"isin": DIVIDEND["isin"], "asOf": DIVIDEND["recordDate"]}
            await api.data(POSITIONS, {"input": {**positions, "positions": holdings}}, token=olga)
            # an Idempotency-Key sent again (replay), then with another body (422)
            key = uuid.uuid4().hex
            variables = {"input": {**DIVIDEND, "reference": f"RU-PROM-{key[:8]}"}}
            for _ in range(2):
                sent = await api.post(ANNOUNCE, variables, token=olga, idempotency_key=key)
                assert sent.status_code == 200, sent.text
            variables["input"]["reference"] += "X"
            refused = await api.post(ANNOUNCE, variables, token=olga, idempotency_key=key)
            assert refused.status_code == 422, refused.text

            # each process's metrics through its own target
            api_job, worker_job = 'job="herald"', 'job="herald-worker"'
            for promql in (
                f'herald_commands_total{{{api_job}, command="announce", outcome="accepted"}}',
                f'herald_idempotency_requests_total{{{api_job}, outcome="replay"}}',
                f'herald_idempotency_requests_total{{{api_job}, outcome="mismatch"}}',
                f"herald_graphql_request_seconds_count{{{api_job}, "
                'operation="announceCorporateAction", type="mutation", outcome="ok"}',
                f"herald_relay_published_total{{{api_job}}}",
                f'herald_projected_events_total{{{worker_job}, projection="cards"}}',
                f'herald_notices_issued_total{{{worker_job}, kind="NEW"}}',
                f'herald_projection_up{{{worker_job}, projection="notices"}}',
            ):
                await prometheus.wait_for(promql, timeout=60)
            assert not await prometheus.query(f"herald_projected_events_total{{{api_job}}}")
            assert not await firing(prometheus, "HeraldProjectorMissing")

            # the only notices projector dies; commands keep coming
            worker.kill()

            async def keep_announcing() -> None:
                while True:
                    await announce(api, olga)
                    await asyncio.sleep(0.5)

            load = asyncio.create_task(keep_announcing())
            try:
                [alert, *_] = await prometheus.wait_for(
                    'ALERTS{alertname="HeraldProjectorMissing", alertstate="firing", '
                    'projection="notices"}',
                    timeout=90,
                )
            finally:
                load.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load
    assert alert["metric"]["severity"] == "critical"


@contextlib.asynccontextmanager
async def running(
    server: ManagedProcess, worker: ManagedProcess, prometheus: PrometheusServer
) -> AsyncIterator[None]:
    server.start()
    worker.start()
    try:
        yield
    except BaseException:
        print(server.log_tail(), worker.log_tail(), sep="\n")
        raise
    finally:
        prometheus.stop()
        worker.stop()
        server.stop()

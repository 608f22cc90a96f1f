"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes a running Herald's
/metrics: after a corporate action is announced through the API, Prometheus's
HTTP API answers with herald_commands_total > 0 — the metrics the dashboard and
the alerts read are really exposed and scrapable, not only defined — and every
dashboard and alert query is PromQL that this Prometheus evaluates."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.observability.conftest import ANNOUNCE
from tests.observability.promtools import PrometheusServer
from tests.observability.test_deploy_config import DASHBOARD, alert_exprs, dashboard_exprs
from tests.support import DIVIDEND, GraphQLClient, RunningHerald


@pytest.fixture(scope="module")
async def prometheus(
    herald: RunningHerald, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PrometheusServer]:
    address = f"127.0.0.1:{herald.settings.port}"
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"), {"herald": (address, "/metrics")}
    )
    await server.start()
    yield server
    server.stop()


async def announce(api: GraphQLClient) -> None:
    operator = api.token("olga", "ca-operator")
    reference = f"RU-OBS-{uuid.uuid4().hex[:8]}"
    data = await api.data(ANNOUNCE, {"input": {**DIVIDEND, "reference": reference}}, token=operator)
    assert data["announceCorporateAction"]["corporateAction"]["version"] == 1


def accepted_announces() -> float:
    labels = {"command": "announce", "outcome": "accepted"}
    return REGISTRY.get_sample_value("herald_commands_total", labels) or 0.0


async def test_prometheus_scrapes_the_commands_herald_handles(
    herald: RunningHerald, api: GraphQLClient, prometheus: PrometheusServer
) -> None:
    before = accepted_announces()  # the registry is per process: other tests count too
    await announce(api)

    await prometheus.wait_for("herald_commands_total")
    [series] = await prometheus.wait_for(
        'herald_commands_total{job="herald", command="announce", outcome="accepted"}',
        above=before,
    )
    assert series["metric"]["instance"] == f"127.0.0.1:{herald.settings.port}"
    # the latency histogram and the relay's counter come through the same scrape
    await prometheus.wait_for('herald_command_seconds_count{command="announce"}', above=before)
    await prometheus.wait_for('herald_relay_published_total{job="herald"}')
    up = await prometheus.query('up{job="herald"}')
    assert [float(s["value"][1]) for s in up] == [1.0]


def as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled in."""
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$\{?(job|instance|edge_job)\}?", ".*", expr)


async def test_every_dashboard_and_alert_query_is_valid_promql(
    api: GraphQLClient, prometheus: PrometheusServer
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        (where, as_promql(expr))
        for where, expr in dashboard_exprs(dashboard)
        if not where.startswith("$")  # variables use Grafana's label_values(), not PromQL
    ]
    queries += list(alert_exprs())
    for where, promql in queries:
        # a parse error is a 400 with status "error"
        try:
            await prometheus.query(promql)
        except (httpx.HTTPStatusError, AssertionError) as exc:
            pytest.fail(f"{where}: Prometheus refuses {promql!r}: {exc}")
    # A panel's query over Herald's series has data once Herald works (not just
    # "valid"). A counter's first sample shows no rate: announce, let Prometheus
    # see the series, announce again.
    await announce(api)
    await prometheus.wait_for('herald_commands_total{command="announce"}')
    await announce(api)
    [panel] = [q for w, q in queries if w == "Command rate by command"]
    await prometheus.wait_for(panel.replace("[1m]", "[5m]"), timeout=30)

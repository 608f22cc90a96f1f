"""deploy/: Prometheus accepts the scrape config and the alert rules (and the
rules' unit tests pass), and the Grafana dashboard and the alerts name only
metrics that the code defines — so neither can drift from observability/metrics.py
(or, for herald_edge_*, from the edge's Lua metrics module)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from observability import metrics
from tests.observability.promtools import PROMTOOL, check_config, require

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "herald-dashboard.json"
EDGE_METRICS_LUA = REPO / "edge" / "lua" / "herald_edge" / "metrics.lua"

# A metric name in PromQL: an identifier not followed by "(" (a function) and
# not a label name (followed by =, !=, =~, !~) — Herald's all start with herald_.
_HERALD_NAME = re.compile(r"\bherald_[a-zA-Z0-9_:]*")


def exposed_names() -> set[str]:
    """Every series name that observability/metrics.py exposes."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            for family in value.describe():
                if family.type == "counter":
                    names |= {family.name + "_total", family.name + "_created"}
                elif family.type == "histogram":
                    suffixes = ("_bucket", "_count", "_sum", "_created")
                    names |= {family.name + suffix for suffix in suffixes}
                else:
                    names.add(family.name)
    return names


def edge_names() -> set[str]:
    """The counter families the edge's Lua metrics module renders."""
    return set(re.findall(r'\{\s*"(herald_edge_[a-z0-9_]+)"', EDGE_METRICS_LUA.read_text()))


def metric_names(expr: str) -> set[str]:
    return set(_HERALD_NAME.findall(expr))


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel["title"], target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield f"${variable['name']}", query["query"] if isinstance(query, dict) else query


def alert_exprs() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def test_the_code_exposes_what_the_checks_expect() -> None:
    names = exposed_names()
    assert {"herald_commands_total", "herald_command_seconds_bucket", "herald_relay_up"} <= names
    assert {"herald_edge_claims_total", "herald_edge_fail_opens_total"} <= edge_names()


def test_promtool_accepts_the_scrape_config() -> None:
    check_config(DEPLOY / "prometheus.yml")


def test_promtool_accepts_the_alert_rules_and_their_unit_tests() -> None:
    require(PROMTOOL)
    for command in (
        ["check", "rules", str(DEPLOY / "alerts.yml")],
        ["test", "rules", str(DEPLOY / "alerts_test.yml")],
    ):
        result = subprocess.run(
            [PROMTOOL, *command], capture_output=True, text=True, timeout=60, cwd=DEPLOY
        )
        assert result.returncode == 0, f"promtool {' '.join(command)}:\n{result.stdout}"


def test_the_alerts_cover_the_operational_failures() -> None:
    alerts = dict(alert_exprs())
    expected = {
        "HeraldRelayDown": "herald_relay_up",
        "HeraldOutboxBacklogGrowing": "herald_outbox_pending",
        "HeraldProjectionLagHigh": "herald_projection_lag",
        "HeraldHttp5xxRate": "herald_http_requests_total",
        "HeraldFanoutStuck": "herald_fanout_accounts_remaining",
        "HeraldChannelBreakerOpen": "herald_channel_breaker_state",
        "HeraldDeadLettersGrowing": "herald_delivery_dead_lettered_total",
        "HeraldProjectionLagUnknown": "herald_projection_up",
        "HeraldProjectorMissing": "herald_projection_up",
        "HeraldDeliveryLatencyHigh": "herald_delivery_latency_seconds_bucket",
        "HeraldConsistencyTimeouts": "herald_consistency_waits_total",
    }
    for alert, metric in expected.items():
        assert alert in alerts, f"missing alert {alert}"
        assert metric in metric_names(alerts[alert]), f"{alert} does not read {metric}"


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_metric_referenced_is_defined_in_code(source: str) -> None:
    if source == "dashboard":
        exprs = list(dashboard_exprs(json.loads(DASHBOARD.read_text())))
    else:
        exprs = list(alert_exprs())
    assert exprs
    known = exposed_names() | edge_names()
    unknown = {
        (where, name) for where, expr in exprs for name in metric_names(expr) if name not in known
    }
    assert not unknown, f"{source} names metrics the code does not define: {sorted(unknown)}"


def test_the_dashboard_is_a_grafana_dashboard_over_herald_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    referenced = {name for _, expr in dashboard_exprs(dashboard) for name in metric_names(expr)}
    # the panels the runbook relies on
    for needed in (
        "herald_commands_total",
        "herald_command_seconds_bucket",
        "herald_http_requests_total",
        "herald_http_request_seconds_bucket",
        "herald_relay_published_total",
        "herald_relay_event_latency_seconds_bucket",
        "herald_outbox_pending",
        "herald_projection_lag",
        "herald_notices_written_total",
        "herald_fanout_accounts_remaining",
        "herald_edge_claims_total",
        "herald_edge_replays_total",
        "herald_edge_fail_opens_total",
        "herald_public_cache_requests_total",
        "herald_graphql_documents_total",
        # the delivery row, and the request and projector panels of issue 15
        "herald_deliveries_total",
        "herald_delivery_latency_seconds_bucket",
        "herald_channel_breaker_state",
        "herald_delivery_dead_lettered_total",
        "herald_idempotency_requests_total",
        "herald_consistency_waits_total",
        "herald_graphql_request_seconds_bucket",
        "herald_notices_issued_total",
        "herald_projection_up",
    ):
        assert needed in referenced, f"dashboard has no panel on {needed}"


def test_the_grafana_provisioning_points_at_the_dashboard_datasource() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load(
        (provisioning / "datasources" / "herald-prometheus.yml").read_text()
    )
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus"
    dashboard = json.loads(DASHBOARD.read_text())
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["current"]["value"] == source["uid"]
    providers = yaml.safe_load((provisioning / "dashboards" / "herald.yml").read_text())
    assert providers["providers"][0]["type"] == "file"

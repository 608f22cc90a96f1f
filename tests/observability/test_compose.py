"""deploy/compose.yml, the production topology: it sets only Herald's real
settings (each HERALD_* and OTEL_* variable is declared in settings.py, each
value one `Settings.from_env` accepts), references only services, configs and volumes
it defines, has the topology it claims, and Prometheus (its own config,
checked by promtool) scrapes every API process, worker and edge in it."""

from __future__ import annotations

import re
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import Settings
from tests.observability.promtools import check_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yml"
DECLARED = {f.metadata["env"] for f in fields(Settings)}
# ${NAME:-default} / ${NAME:?message}: compose's interpolation of the operator's values
_INTERPOLATED = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def named_in(value: Any) -> list[str]:
    """depends_on / links / volumes_from: a list or a mapping of service names."""
    if isinstance(value, dict):
        return list(value)
    return [str(item).split(":", 1)[0] for item in value or []]


def test_every_herald_variable_is_a_declared_setting_with_a_valid_value() -> None:
    checked = 0
    for name, service in services().items():
        env = environment(service)
        herald = {k: v for k, v in env.items() if k.startswith(("HERALD_", "OTEL_"))}
        unknown = set(herald) - DECLARED
        assert not unknown, f"{name} sets variables settings.py does not declare: {unknown}"
        # The value as compose would pass it with each ${...} left at its
        # default (a required one gets a plausible value): Herald must take it.
        sample = {
            k: _INTERPOLATED.sub(lambda m: _example(m.group(1), m.group(2) or ""), v)
            for k, v in herald.items()
        }
        Settings.from_env(sample)
        checked += len(herald)
    assert checked > 20


def _example(variable: str, default: str) -> str:
    required = {
        "HERALD_JWKS": "https://idp.example/.well-known/jwks.json",
        "HERALD_JWT_ISSUER": "https://idp.example",
    }
    return required.get(variable, default)


def test_every_reference_names_something_the_file_defines() -> None:
    document = compose()
    defined = set(document["services"])
    configs = set(document.get("configs") or {})
    volumes = set(document.get("volumes") or {})
    for name, service in document["services"].items():
        for key in ("depends_on", "links", "volumes_from"):
            missing = set(named_in(service.get(key))) - defined
            assert not missing, f"{name}.{key} names undefined services {missing}"
        for config in service.get("configs") or []:
            source = config["source"] if isinstance(config, dict) else config
            assert source in configs, f"{name} uses undefined config {source}"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts undefined volume {source}"
    for name, config in (document.get("configs") or {}).items():
        assert (DEPLOY / config["file"]).is_file(), f"config {name}: {config['file']} missing"
    build = document["services"]["api-1"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def _hosts(addresses: str) -> set[str]:
    return {address.rsplit(":", 1)[0] for address in addresses.split(",")}


def test_the_topology_is_the_production_one() -> None:
    found = services()

    def running(*command: str) -> list[str]:
        return [
            n for n, s in found.items() if s.get("command", [])[: len(command)] == list(command)
        ]

    brokers = [n for n, s in found.items() if "KAFKA_PROCESS_ROLES" in environment(s)]
    assert len(brokers) == 3
    assert {environment(found[b])["KAFKA_PROCESS_ROLES"] for b in brokers} == {"broker,controller"}
    voters = environment(found[brokers[0]])["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert {v.split("@")[1].split(":")[0] for v in voters.split(",")} == set(brokers)
    assert len({environment(found[b])["KAFKA_NODE_ID"] for b in brokers}) == 3
    assert len([n for n, s in found.items() if "--replSet" in s.get("command", [])]) == 3
    assert len([n for n, s in found.items() if "--cluster-enabled" in s.get("command", [])]) == 3
    assert len(running("python", "-m", "edge", "run")) == 2
    api, workers = running("herald", "serve"), running("herald", "worker")
    assert len(api) == 2 and len(workers) == 2
    for name in ("prometheus", "grafana", "otel-collector"):
        assert name in found
    for name in api + workers:
        env = environment(found[name])
        assert _hosts(env["HERALD_KAFKA_BOOTSTRAP"]) == set(brokers)
        uri = env["HERALD_MONGO_URI"]
        members = re.fullmatch(r"mongodb://([^/]+)/\?replicaSet=\w+", uri)
        assert members and _hosts(members.group(1)) <= set(found)
    # API processes publish (the relay) and serve; workers project and deliver
    for name in api:
        assert environment(found[name])["HERALD_RUN_PROJECTORS"] == "false"
    for name in workers:
        assert environment(found[name])["HERALD_RUN_DISPATCHER"] == "true"


def test_prometheus_in_compose_scrapes_each_api_process_worker_and_edge(
    tmp_path: Path,
) -> None:
    found = services()
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
        for job in config["scrape_configs"]
    }
    api = {f"{n}:{environment(s)['HERALD_PORT']}" for n, s in found.items() if n.startswith("api")}
    workers = {
        f"{n}:{environment(s)['HERALD_WORKER_METRICS_PORT']}"
        for n, s in found.items()
        if n.startswith("worker")
    }
    edges = {
        f"{n}:{s['command'][s['command'].index('--status') + 1].rsplit(':', 1)[1]}"
        for n, s in found.items()
        if n.startswith("edge")
    }
    assert jobs == {"herald": api, "herald-worker": workers, "herald-edge": edges}
    # promtool, with the rules beside it as in the container
    shutil.copy(DEPLOY / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    check_config(tmp_path / "prometheus.yml")


@pytest.mark.parametrize("path", ["compose/otel-collector.yml", "compose/grafana-datasource.yml"])
def test_the_side_configs_are_yaml_the_services_read(path: str) -> None:
    document = yaml.safe_load((DEPLOY / path).read_text())
    if "datasources" in document:
        [source] = document["datasources"]
        assert source["uid"] == "herald-prometheus"  # the dashboard's datasource
        assert source["url"].split("//")[1].split(":")[0] in services()
    else:
        pipeline = document["service"]["pipelines"]["traces"]
        assert set(pipeline["receivers"]) <= set(document["receivers"])
        assert set(pipeline["exporters"]) <= set(document["exporters"])
        endpoint = environment(services()["api-1"])["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint.endswith(":4318")
        assert document["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")

"""Rendering and the command line: the config is validated, the rendered
prefix passes ``nginx -t`` (which also runs init_by_lua, so the Lua config
table is loaded), ``python -m edge`` renders, runs and names Redis keys, and
a missing nginx fails with the install hint.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from devstack.process import free_port
from devstack.redis import RedisServer
from edge import EdgeConfig, EdgeNotInstalledError, EdgeServer, redis_key, require_installed
from edge.config import DAY_MS, caller_scope
from edge.dev import DevEdge, edge_available
from edge.render import lua_literal
from tests.edge.support import Upstream

REPO = Path(__file__).resolve().parents[2]


def config(**overrides: object) -> EdgeConfig:
    settings: dict[str, object] = {
        "listen": f"127.0.0.1:{free_port()}",
        "status_listen": f"127.0.0.1:{free_port()}",
        "upstreams": ("127.0.0.1:9",),
        "redis_nodes": ("127.0.0.1:6379",),
        **overrides,
    }
    return EdgeConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"key_ttl_ms": DAY_MS - 1}, "24 hours"),
        ({"paths": ("/graphql;",)}, "path"),
        ({"queued_paths": ("/other",)}, "subset"),
        ({"cache_paths": ("/other",)}, "cache_paths must be a subset"),
        ({"cache_generation_key": "a key"}, "cache_generation_key"),
        ({"cache_max_size_mb": 0}, "cache_max_size_mb"),
        ({"lock_ttl_ms": 30_000}, "lock_ttl_ms"),
        ({"redis_nodes": ("redis.internal:6379",)}, "resolver"),
        ({"redis_nodes": ("127.0.0.1:1", "127.0.0.1:2")}, "standalone"),
        ({"upstreams": ()}, "upstream"),
        ({"methods": ("GET",)}, "method"),
        ({"listen": "8080"}, "host:port"),
    ],
)
def test_config_is_validated(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_rendered_prefix_passes_nginx_t(tmp_path: Path) -> None:
    weird = config(
        key_prefix='we"ird\\pre\nfix:é:',
        paths=("/graphql", "/v1/commands"),
        queued_paths=("/v1/commands",),
        redis_cluster=True,
        redis_nodes=("127.0.0.1:7000", "127.0.0.1:7001"),
        redis_password="p@ss'\"word",
        access_log=True,
    )
    server = EdgeServer(weird, tmp_path / "prefix")
    server.check()  # raises with nginx's output on failure
    conf = (tmp_path / "prefix" / "conf" / "nginx.conf").read_text()
    assert "location = /v1/commands" in conf and ".access(true)" in conf
    assert "location = /graphql" in conf and ".access(false)" in conf
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"{temp}_temp_path temp/{temp};" in conf
    assert (tmp_path / "prefix" / "lua" / "herald_edge" / "init.lua").exists()
    # the read cache is on /graphql only (its default), not on other idempotent paths
    graphql = conf.split("location = /graphql")[1].split("location")[0]
    commands = conf.split("location = /v1/commands")[1].split("location")[0]
    assert "proxy_cache herald_edge_cache;" in graphql
    assert "proxy_cache " not in commands
    assert "proxy_cache_path temp/cache " in conf


def test_without_cache_paths_nothing_is_cached(tmp_path: Path) -> None:
    server = EdgeServer(config(cache_paths=()), tmp_path / "prefix")
    server.check()
    conf = (tmp_path / "prefix" / "conf" / "nginx.conf").read_text()
    assert "proxy_cache" not in conf and "X-Cache" not in conf


def test_lua_literal_escapes_every_byte() -> None:
    assert lua_literal('a"b\\c\n') == '"a\\034b\\092c\\010"'
    assert lua_literal("é") == '"\\195\\169"'
    assert (
        lua_literal({"k": [1, True, None]})
        == '{\n    ["k"] = {\n        1,\n        true,\n        nil,\n    },\n}'
    )


def test_redis_key_matches_the_documented_scheme() -> None:
    assert caller_scope(None) == "anonymous"
    assert caller_scope("") == "anonymous"
    assert len(caller_scope("Bearer x")) == 32
    key = redis_key("abc", "Bearer x")
    assert key.startswith("herald:idem:" + caller_scope("Bearer x") + ":")
    assert redis_key("abc", "Bearer y") != key


def test_missing_nginx_fails_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_NGINX", "/nonexistent/nginx")
    with pytest.raises(EdgeNotInstalledError, match="scripts/install-edge-packages"):
        require_installed()
    result = subprocess.run(
        [sys.executable, "-m", "edge", "check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"HERALD_NGINX": "/nonexistent/nginx", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 1
    assert "scripts/install-edge-packages" in result.stderr


def test_cli_key_and_render(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge", "key", "--authorization", "Bearer t", "k-1"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert out == redis_key("k-1", "Bearer t")
    prefix = tmp_path / "rendered"
    result = subprocess.run(
        [
            sys.executable, "-m", "edge", "render", "--prefix", str(prefix),
            "--upstream", "127.0.0.1:8000", "--redis", "127.0.0.1:6379",
            "--queued-path", "/graphql",
        ],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "daemon off;" in result.stdout
    check = subprocess.run(
        ["nginx", "-t", "-p", f"{prefix}/", "-c", "conf/nginx.conf", "-e", "logs/error.log"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_cli_run_serves_until_terminated(redis_server: RedisServer, tmp_path: Path) -> None:
    listen, status = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "edge", "run", "--prefix", str(tmp_path / "run"),
            "--listen", f"127.0.0.1:{listen}", "--status", f"127.0.0.1:{status}",
            "--upstream", "127.0.0.1:9", "--redis", redis_server.address, "--workers", "1",
        ],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"127.0.0.1:{listen}" in line, line
        metrics = httpx.get(f"http://127.0.0.1:{status}/edge-metrics", timeout=5)
        assert "herald_edge_claims_total 0" in metrics.text
        # the app is down (port 9): the edge answers 502 and releases the claim
        response = httpx.post(
            f"http://127.0.0.1:{listen}/graphql", json={}, headers={"Idempotency-Key": "x"}
        )
        assert response.status_code == 502
        metrics = httpx.get(f"http://127.0.0.1:{status}/edge-metrics", timeout=5)
        assert "herald_edge_released_total 1" in metrics.text
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


def test_dev_edge_fronts_a_dev_server(upstream: Upstream, tmp_path: Path) -> None:
    assert edge_available()
    dev_edge = DevEdge(upstream.port, listen_port=free_port(), log_dir=tmp_path / "edge")
    dev_edge.start()
    try:
        with httpx.Client(base_url=dev_edge.base_url, timeout=10) as client:
            headers = {"Idempotency-Key": f"dev-{uuid.uuid4()}"}
            first = client.post("/graphql", json={"dev": 1}, headers=headers)
            again = client.post("/graphql", json={"dev": 1}, headers=headers)
        assert first.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert "herald_edge_replays_total 1" in httpx.get(dev_edge.metrics_url).text
    finally:
        dev_edge.stop()

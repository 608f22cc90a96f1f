"""Debian's Prometheus binaries for the observability tests, and a real
Prometheus server on loopback (storage in a temporary folder)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.process import ManagedProcess, free_port

INSTALL_HINT = "run scripts/install-observability-packages (Debian's `prometheus` package)"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def require(binary: str) -> None:
    """Fail (never skip) when a Prometheus binary is missing."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"{binary} not found: {INSTALL_HINT}", pytrace=False)


def check_config(config: Path) -> None:
    """`promtool check config` accepts `config` (its rule files beside it)."""
    require(PROMTOOL)
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


class PrometheusServer:
    """`/usr/bin/prometheus` scraping the given targets every second."""

    def __init__(
        self, workdir: Path, targets: dict[str, tuple[str, str]], rules: Path | None = None
    ) -> None:
        """targets: job name -> (host:port, metrics path); rules: a rule file,
        evaluated every second."""
        require(PROMETHEUS)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.config = workdir / "prometheus.yml"
        jobs = "".join(
            f"""
  - job_name: {job}
    metrics_path: {path}
    static_configs:
      - targets: ["{address}"]
"""
            for job, (address, path) in targets.items()
        )
        self.config.write_text(
            f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
{f"rule_files: [{str(rules)!r}]" if rules else ""}
scrape_configs:{jobs}"""
        )
        self.process = ManagedProcess(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            workdir,
            cwd=workdir,
        )

    async def start(self) -> None:
        self.process.start()

        async def ready() -> None:
            async with httpx.AsyncClient(timeout=2) as http:
                (await http.get(f"{self.url}/-/ready")).raise_for_status()

        await self.process.wait_ready(self.port, ready, timeout=60)

    def stop(self) -> None:
        self.process.stop()

    async def query(self, promql: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{self.url}/api/v1/query", params={"query": promql})
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def targets(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{self.url}/api/v1/targets")
        response.raise_for_status()
        active: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
        return active

    async def wait_for(
        self, promql: str, *, above: float = 0.0, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Query until the result has a sample > `above`; fail with the targets' state."""
        deadline = time.monotonic() + timeout
        while True:
            result = await self.query(promql)
            if any(float(series["value"][1]) > above for series in result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no sample > {above} for {promql!r} after {timeout:.0f}s: {result}; "
                    f"targets: {await self.targets()}; log:\n{self.process.log_tail()}"
                )
            await asyncio.sleep(0.5)

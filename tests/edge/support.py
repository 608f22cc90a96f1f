"""Helpers shared by the edge tests (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses

import httpx

from devstack.process import ManagedProcess
from edge import EdgeServer, parse_metrics
from edge.config import PROBLEM_TYPES


@dataclasses.dataclass
class Upstream:
    """The counting upstream: hits = arrivals, executions = real runs."""

    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stats(self, key: str | None = None) -> dict[str, int]:
        params = {"key": key} if key is not None else None
        async with httpx.AsyncClient(base_url=f"http://{self.address}") as client:
            response = await client.get("/_stats", params=params)
            response.raise_for_status()
            data: dict[str, int] = response.json()
            return data

    async def stats_many(self, keys: list[str]) -> dict[str, dict[str, int]]:
        async with httpx.AsyncClient(base_url=f"http://{self.address}", timeout=30) as client:
            response = await client.post("/_stats", json=keys)
            response.raise_for_status()
            data: dict[str, dict[str, int]] = response.json()
            return data


async def edge_metrics(server: EdgeServer) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(server.metrics_url)
        response.raise_for_status()
    return parse_metrics(response.text)


def fail_opens(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("herald_edge_fail_opens_total"))


def assert_problem(response: httpx.Response, kind: str) -> dict[str, object]:
    """An RFC 9457 refusal of the expected kind, with the shared type URI and code."""
    status, type_uri, code = PROBLEM_TYPES[kind]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["type"] == type_uri
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body

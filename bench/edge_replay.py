"""Duplicate replays served by the edge vs unique requests through the app.

Starts redis-server, the counting upstream (tests/edge/upstream.py: a
Starlette app under one uvicorn process, with its own idempotency check) and
one nginx edge on loopback; then, with the same client (a keep-alive HTTP/1.1
pool, tests/edge/httpclient.py) and the same concurrency, in one run:

- unique: every request has a fresh Idempotency-Key, so the edge claims it
  in Redis, the app executes it, and the edge stores the response;
- duplicates: one request, then every other request repeats its key and body,
  so the edge answers each from Redis without touching the app;
- direct (reference): unique requests straight to the app, no edge.

Phases alternate for ``--rounds`` rounds; the median of each is printed, with
the ratio and the app's hit and execution count for the duplicated key
(must be 1 and 1).

    .venv/bin/python -m bench.edge_replay [--requests 10000] [--connections 50]
        [--workers 2] [--rounds 3] [--json]

Everything shares the machine's cores (client, nginx, Redis, uvicorn), so the
absolute numbers are this box's; the ratio is the point. The stub app does
almost nothing per request: Herald's real mutations cost far more, so the
real ratio is larger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from bench.figures import Figure, Result
from devstack.process import ManagedProcess, free_port
from devstack.redis import RedisServer
from edge import EdgeConfig, EdgeServer
from edge.server import http_get, parse_metrics
from tests.edge.httpclient import RawHTTPPool

REPO = Path(__file__).resolve().parents[1]
BODY = json.dumps(
    {
        "query": "mutation($input: AnnounceInput!) { announce(input: $input) { id } }",
        "variables": {"input": {"isin": "DE0007164600", "grossRate": "1.23"}},
    }
).encode()


async def run_phase(
    host: str,
    port: int,
    connections: int,
    requests: int,
    key_for: Callable[[int], str],
    *,
    expect_replayed: bool | None,
) -> float:
    """Send ``requests`` POSTs over ``connections`` connections; requests/second."""
    counter = iter(range(requests))
    failures: list[str] = []

    async def worker(pool: RawHTTPPool) -> None:
        for i in counter:
            response = await pool.post(
                "/graphql",
                BODY,
                {"Idempotency-Key": key_for(i), "Content-Type": "application/json"},
            )
            replayed = response.headers.get("idempotent-replayed") == "true"
            if response.status != 200 or (
                expect_replayed is not None and replayed != expect_replayed
            ):
                failures.append(f"{response.status} replayed={replayed} {response.body[:200]!r}")

    async with RawHTTPPool(host, port, connections=connections) as pool:
        started = time.perf_counter()
        await asyncio.gather(*(worker(pool) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} unexpected answers, e.g. {failures[0]}")
    return requests / elapsed


def numbered(prefix: str) -> Callable[[int], str]:
    return lambda i: f"{prefix}-{i}"


def always(key: str) -> Callable[[int], str]:
    return lambda _i: key


async def bench(
    args: argparse.Namespace, edge: EdgeServer, upstream_port: int
) -> dict[str, object]:
    host, port = edge.config.listen_address
    run_id = uuid.uuid4().hex[:8]
    dup_key = f"bench-dup-{run_id}"
    conns = args.connections

    # warm-up: connections, Lua code caches, Redis pools; then the first
    # request of the duplicated key, which the app executes
    await run_phase(host, port, conns, 2000, numbered(f"warm-{run_id}"), expect_replayed=False)
    await run_phase(host, port, 1, 1, always(dup_key), expect_replayed=False)

    unique: list[float] = []
    duplicates: list[float] = []
    direct: list[float] = []
    for r in range(args.rounds):
        unique.append(
            await run_phase(
                host, port, conns, args.requests, numbered(f"u-{run_id}-{r}"), expect_replayed=False
            )
        )
        duplicates.append(
            await run_phase(host, port, conns, args.requests, always(dup_key), expect_replayed=True)
        )
        direct.append(
            await run_phase(
                "127.0.0.1",
                upstream_port,
                conns,
                args.requests,
                numbered(f"d-{run_id}-{r}"),
                expect_replayed=False,
            )
        )

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{upstream_port}") as client:
        dup_stats = (await client.get("/_stats", params={"key": dup_key})).json()
    status, text = await http_get(*edge.config.status_address or ("127.0.0.1", 0), "/edge-metrics")
    metrics = parse_metrics(text.decode()) if status == 200 else {}
    replay_rps = statistics.median(duplicates)
    unique_rps = statistics.median(unique)
    return {
        "requests_per_phase": args.requests,
        "rounds": args.rounds,
        "connections": args.connections,
        "nginx_workers": args.workers,
        "redis_timeouts_ms": [args.redis_connect_timeout_ms, args.redis_read_timeout_ms],
        "duplicate_replays_per_s": round(replay_rps),
        "unique_through_edge_per_s": round(unique_rps),
        "unique_direct_to_app_per_s": round(statistics.median(direct)),
        "ratio_replay_vs_unique": round(replay_rps / unique_rps, 2),
        "duplicates_sent": args.requests * args.rounds,
        "app_hits_for_duplicated_key": dup_stats["hits"],
        "app_executions_for_duplicated_key": dup_stats["executions"],
        "edge_fail_opens": sum(
            v for k, v in metrics.items() if k.startswith("herald_edge_fail_opens")
        ),
        "all_rounds": {"duplicates": duplicates, "unique": unique, "direct": direct},
    }


def _run(coro: Coroutine[Any, Any, dict[str, object]]) -> dict[str, object]:
    """uvloop when present (it comes with uvicorn[standard]): a cheaper client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def measure(
    *,
    requests: int = 10000,
    connections: int = 50,
    workers: int = 2,
    rounds: int = 3,
    redis_connect_timeout_ms: int = 50,
    redis_read_timeout_ms: int = 100,
) -> dict[str, object]:
    """Start redis-server, the stub upstream and one nginx edge; run the phases
    (see the module's docstring); stop them; the figures as a dict."""
    args = argparse.Namespace(
        requests=requests,
        connections=connections,
        workers=workers,
        rounds=rounds,
        redis_connect_timeout_ms=redis_connect_timeout_ms,
        redis_read_timeout_ms=redis_read_timeout_ms,
    )
    with tempfile.TemporaryDirectory(prefix="herald-bench-edge-") as tmp:
        workdir = Path(tmp)
        redis_server = RedisServer()
        upstream_port = free_port()
        upstream = ManagedProcess(
            "bench-upstream",
            [sys.executable, "-m", "tests.edge.upstream", "--port", str(upstream_port)],
            workdir,
            cwd=REPO,
        )
        edge = EdgeServer(
            EdgeConfig(
                name="bench",
                listen=f"127.0.0.1:{free_port()}",
                status_listen=f"127.0.0.1:{free_port()}",
                upstreams=(f"127.0.0.1:{upstream_port}",),
                redis_nodes=(f"127.0.0.1:{redis_server.port}",),
                worker_processes=workers,
                redis_connect_timeout_ms=redis_connect_timeout_ms,
                redis_read_timeout_ms=redis_read_timeout_ms,
            ),
            workdir / "nginx",
        )
        try:
            redis_server.start()
            upstream.start()
            await upstream.wait_ready(upstream_port, timeout=30)
            edge.start()
            result = await bench(args, edge, upstream_port)
            result["edge_error_log_tail"] = edge.error_log_tail(5).splitlines()
        finally:
            edge.stop()
            upstream.stop()
            redis_server.close()
    return result


def figures(result: dict[str, object]) -> Result:
    """The edge's figures for `herald bench`."""
    figures = Result(
        "edge",
        sizes={
            k: result[k] for k in ("requests_per_phase", "rounds", "connections", "nginx_workers")
        },
    )
    figures.add(
        Figure(
            "edge replay of duplicates (stub upstream)",
            float(str(result["duplicate_replays_per_s"])),
            "req/s",
            "unique requests through the edge to the app",
            float(str(result["unique_through_edge_per_s"])),
            "≥ 5× against Herald's real mutation path",
        )
    )
    figures.notes.append(
        f"app hits/executions for the duplicated key: {result['app_hits_for_duplicated_key']}/"
        f"{result['app_executions_for_duplicated_key']} (edge fail-opens: "
        f"{result['edge_fail_opens']}); unique straight to the app: "
        f"{result['unique_direct_to_app_per_s']} req/s"
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.edge_replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=10000, help="per phase and round")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="nginx worker processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-connect-timeout-ms", type=int, default=50)
    parser.add_argument("--redis-read-timeout-ms", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()

    result = _run(
        measure(
            requests=args.requests,
            connections=args.connections,
            workers=args.workers,
            rounds=args.rounds,
            redis_connect_timeout_ms=args.redis_connect_timeout_ms,
            redis_read_timeout_ms=args.redis_read_timeout_ms,
        )
    )

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"edge replay bench: {args.rounds} rounds x {args.requests} requests per phase, "
        f"{args.connections} keep-alive connections, nginx workers={args.workers}, "
        f"standalone redis-server (edge timeouts connect {args.redis_connect_timeout_ms} ms, "
        f"read {args.redis_read_timeout_ms} ms), app = Starlette stub under 1 uvicorn process; "
        "client, nginx, Redis and app share this machine's cores"
    )
    rows = [
        ("unique requests through the edge to the app", result["unique_through_edge_per_s"]),
        ("duplicate replays served by the edge", result["duplicate_replays_per_s"]),
        ("(reference) unique requests straight to app", result["unique_direct_to_app_per_s"]),
    ]
    for label, value in rows:
        print(f"  {label:<44}: {value:>8} req/s")
    print(f"  {'ratio replay / unique':<44}: {result['ratio_replay_vs_unique']:>8}x")
    print(
        f"  app for the duplicated key ({result['duplicates_sent']} duplicates): "
        f"hits={result['app_hits_for_duplicated_key']} "
        f"executions={result['app_executions_for_duplicated_key']}"
        f"  (edge fail-opens: {result['edge_fail_opens']:.0f})"
    )
    if result["app_hits_for_duplicated_key"] != 1:
        print(
            "  note: duplicates reached the app while the edge failed open (Redis slower than "
            "its read timeout on this busy machine); the app's own check replayed them"
        )
    return 0 if result["app_executions_for_duplicated_key"] == 1 else 1


if __name__ == "__main__":
    sys.exit(main())

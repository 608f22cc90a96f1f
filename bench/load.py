"""Load from a separate process on loopback, bounded in count and time.

The server under test (Herald, in the benchmark's process) and the client
that loads it must not share an event loop, or the client's own work would
be charged to the server. `LoadProcess` is one spawned child; the functions
it runs are module-level (picklable by reference) and synchronous at the
boundary (each runs its own event loop in the child).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import httpx

P = ParamSpec("P")
TRANSPORT_ATTEMPTS = 3
T = TypeVar("T")


class LoadProcess:
    """One spawned child process that runs load functions, one at a time."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))

    async def __aenter__(self) -> LoadProcess:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args)` in the child; its result (pickled back)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _call, fn, args, kwargs)


def _call(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    return fn(*args, **kwargs)


@dataclass(frozen=True)
class GraphQLLoad:
    """`count` POSTs of `query` from `clients` concurrent clients, stopping
    early after `seconds`; `variables(n)` (module-level) gives request n's."""

    url: str
    token: str | None
    query: str
    variables: Callable[[int], dict[str, Any]]
    count: int
    clients: int = 1
    seconds: float = 60.0


@dataclass
class LoadResult:
    completed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


class NotCaughtUp(RuntimeError):
    """A read with a consistency token answered NOT_CAUGHT_UP: ask again."""


async def post(
    http: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """One GraphQL POST with a fresh Idempotency-Key; its `data`. Errors raise
    (NotCaughtUp for a read whose projection has not caught up yet)."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(TRANSPORT_ATTEMPTS):
        try:
            response = await http.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            break
        except httpx.TransportError:
            # e.g. a keep-alive connection the server closed as it was reused:
            # sent again under the same key, the request still runs once
            if attempt == TRANSPORT_ATTEMPTS - 1:
                raise
    body: dict[str, Any] = response.json()
    errors = body.get("errors") or []
    if any(e.get("extensions", {}).get("code") == "NOT_CAUGHT_UP" for e in errors):
        raise NotCaughtUp(str(errors)[:300])
    if response.status_code != 200 or errors:
        raise RuntimeError(f"{response.status_code}: {str(body)[:300]}")
    data: dict[str, Any] = body["data"]
    return data


def client(url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, timeout=60, limits=limits)


async def _graphql_load(load: GraphQLLoad) -> LoadResult:
    result = LoadResult()
    numbers = iter(range(load.count))
    async with client(load.url, load.clients) as http:
        started = time.perf_counter()
        deadline = started + load.seconds

        async def worker() -> None:
            for n in numbers:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                await post(http, load.token, load.query, load.variables(n))
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                result.completed += 1

        await asyncio.gather(*(worker() for _ in range(load.clients)))
        result.seconds = time.perf_counter() - started
    return result


def graphql_load(load: GraphQLLoad) -> LoadResult:
    """Run `load` (in the child); what completed, in how long, and each latency."""
    return asyncio.run(_graphql_load(load))


def empty(n: int) -> dict[str, Any]:
    """No variables (for `{ __typename }`)."""
    return {}


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when present (it comes with uvicorn[standard]): a
    cheaper client loop for loads of thousands of requests a second."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)

"""The edge cache's publication generation in Redis (`PublicGeneration`).

The edges (edge/lua/herald_edge/cache.lua) key every cached public answer by
the value under one Redis key; `advance` sets a value never used before
(`SET key <uuid4>`), so no edge answers an entry cached under an earlier one.

An unreachable Redis costs one bounded attempt (`timeout_seconds`); then the
app goes on (its own cache moves on as usual) and sets a fresh generation in
the background every `retry_seconds` until Redis answers, while advances in
the meantime only wait for that. Until then an edge that still reads the old
generation answers what it cached for as long as the app's Cache-Control
allows (max-age), then revalidates with the ETag (edge/README.md, "Read cache").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

__all__ = ["RedisPublicGeneration"]

log = logging.getLogger(__name__)


class RedisPublicGeneration:
    """`PublicGeneration` under `key` of the Redis at `url` (redis://host:port/db);
    with `cluster`, of the Redis Cluster that node belongs to (routed by slot,
    as the edges route it)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        cluster: bool = False,
        timeout_seconds: float = 0.25,
        retry_seconds: float = 1.0,
    ) -> None:
        self._client: aioredis.Redis | RedisCluster = (
            RedisCluster if cluster else aioredis.Redis
        ).from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        self.key = key
        self._timeout = timeout_seconds
        self._retry_seconds = retry_seconds
        self._down_until = 0.0
        self._retrying: asyncio.Task[None] | None = None
        self.current: str | None = None  # the last generation set

    async def advance(self) -> None:
        """Set a fresh generation (one bounded attempt; see the module doc)."""
        if time.monotonic() >= self._down_until and await self._set():
            return
        self._down_until = time.monotonic() + self._retry_seconds
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.create_task(self._retry(), name="edge-generation-retry")

    async def _set(self) -> bool:
        generation = uuid.uuid4().hex
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.set(self.key, generation)
        except (RedisError, OSError, TimeoutError) as exc:
            if self._retrying is None or self._retrying.done():
                log.warning(
                    "edge cache generation not set in Redis (%s); retrying every %ss: edges "
                    "answer their entries until the app's max-age",
                    exc,
                    self._retry_seconds,
                )
            return False
        self.current = generation
        return True

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds)
            if await self._set():
                self._down_until = 0.0
                log.info("edge cache generation set in Redis again")
                return

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()

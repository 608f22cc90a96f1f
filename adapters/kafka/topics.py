"""Topic layout and administration.

One topic per aggregate type, keyed by aggregate id, so that every event of
one aggregate lands in one partition, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from domain.events import (
    AGGREGATE_CORPORATE_ACTION,
    AGGREGATE_NOTICE,
    AGGREGATE_NOTICE_ISSUE,
    AGGREGATE_POSITIONS,
    AGGREGATE_PREFERENCES,
)
from domain.ports import PublishError

TOPIC_OF_AGGREGATE = {
    AGGREGATE_CORPORATE_ACTION: "corporate-actions",
    AGGREGATE_POSITIONS: "positions",
    AGGREGATE_NOTICE: "notices",
    AGGREGATE_PREFERENCES: "preferences",
    AGGREGATE_NOTICE_ISSUE: "notice-issues",
}


def topic_for(prefix: str, aggregate_type: str) -> str:
    return f"{prefix}.{TOPIC_OF_AGGREGATE[aggregate_type]}"


def log_marker(prefix: str) -> str:
    """A topic created with the others that nothing writes to or reads: a
    broker that auto-creates topics re-creates the others on the first
    publish or subscription, so only this one's absence says the broker lost
    the log (a memory-only broker restarted, the topics deleted)."""
    return f"{prefix}.log-marker"


def all_topics(prefix: str) -> list[str]:
    return [*(f"{prefix}.{name}" for name in TOPIC_OF_AGGREGATE.values()), log_marker(prefix)]


async def log_lost(bootstrap: str, prefix: str, timeout: float = 3.0) -> bool:
    """True when the broker lists no `log_marker(prefix)` topic. Raises
    PublishError when the broker does not answer in time."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        return log_marker(prefix) not in await asyncio.wait_for(admin.list_topics(), timeout)
    except (KafkaError, TimeoutError, OSError) as exc:
        raise PublishError(f"cannot list the topics on {bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap: str,
    prefix: str,
    partitions: int,
    timeout: float = 30,
    topics: Sequence[str] | None = None,
    before_creating: Callable[[], Awaitable[None]] | None = None,
) -> list[str]:
    """Create Herald's topics (or `topics`) if missing (idempotent); returns
    those it created. `before_creating` runs first when some are missing
    (what it raises propagates, and nothing is created)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        wanted = all_topics(prefix) if topics is None else list(topics)
        missing = [t for t in wanted if t not in existing]
        if missing:
            if before_creating is not None:
                await before_creating()
            try:
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            except TopicAlreadyExistsError:
                return []  # another process created them at the same moment
        return missing
    except (KafkaError, TimeoutError, OSError) as exc:
        raise PublishError(f"cannot create topics on {bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def kafka_ping(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when the broker answers a metadata request in time."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except (KafkaError, TimeoutError, OSError):
        return False
    finally:
        await admin.close()

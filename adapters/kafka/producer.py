"""Starting and stopping an aiokafka producer, the one way every Herald
producer does it (event publisher, dead-letter topics, SWIFT channel)."""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka import AIOKafkaProducer


async def started_producer(
    bootstrap: str, *, request_timeout_ms: int, idempotent: bool = False, **options: Any
) -> AIOKafkaProducer:
    """A started producer that waits for every in-sync replica (`acks="all"`);
    `options` are aiokafka's (linger_ms, max_request_size…). A producer that
    fails to start is stopped before the error propagates (no leaked sockets)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        request_timeout_ms=request_timeout_ms,
        **options,
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


async def stop_quietly(producer: AIOKafkaProducer | None) -> None:
    """Stop a producer that may be broken: closing it must not mask the real error."""
    if producer is not None:
        with contextlib.suppress(Exception):
            await producer.stop()

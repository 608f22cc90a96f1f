"""Which partitions each `herald worker` holds, read from its own log.

aiokafka logs "Setting newly assigned partitions {...} for group G" at every
rebalance; a worker's current share of a consumer group is its last such line.
Used by the scale-out fault test and the fan-out scale-out benchmark to wait
until the members have split the partitions between them; `worker_env` is
the environment such a worker (or a `herald serve`) is started with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from devstack.process import ManagedProcess
from settings import Settings

# a console line or a JSON one (the worker's default format)
_ASSIGNED = re.compile(r"Setting newly assigned partitions (.*) for group ([^\s\"]+)")
_PARTITION = re.compile(r"TopicPartition\(topic='([^']+)', partition=(\d+)\)")

Partition = tuple[str, int]


def assignments(worker: ManagedProcess, group: str) -> list[set[Partition]]:
    """Every assignment the worker's member of `group` received, oldest first."""
    try:
        text = worker.log_path.read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        match = _ASSIGNED.search(line)
        if match and match.group(2) == group:
            found.append({(t, int(p)) for t, p in _PARTITION.findall(match.group(1))})
    return found


def current(worker: ManagedProcess, group: str) -> set[Partition]:
    """The worker's latest share of `group` (empty before its first assignment)."""
    history = assignments(worker, group)
    return history[-1] if history else set()


def split(shares: Sequence[set[Partition]], partitions: int) -> bool:
    """Every member holds a non-empty share, no partition twice, all of them held."""
    held: set[Partition] = set()
    for share in shares:
        if not share or share & held:
            return False
        held |= share
    return len(held) == partitions


def worker_env(s: Settings) -> dict[str, str]:
    """The HERALD_* environment of a `herald serve` / `herald worker` subprocess
    sharing `s`'s store, broker, topics, groups and issuer."""
    return {
        "HERALD_MONGO_URI": s.mongo_uri,
        "HERALD_MONGO_DATABASE": s.mongo_database,
        "HERALD_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
        "HERALD_KAFKA_IDEMPOTENT_PRODUCER": str(s.kafka_idempotent_producer).lower(),
        "HERALD_KAFKA_TOPIC_PREFIX": s.kafka_topic_prefix,
        "HERALD_KAFKA_PARTITIONS": str(s.kafka_partitions),
        "HERALD_KAFKA_SESSION_TIMEOUT_MS": str(s.kafka_session_timeout_ms),
        "HERALD_PROJECTOR_GROUP_PREFIX": s.projector_group_prefix,
        "HERALD_JWKS": s.jwks_location or "",
        "HERALD_JWT_ISSUER": s.jwt_issuer,
        "HERALD_JWT_AUDIENCE": s.jwt_audience,
        "HERALD_RUN_DISPATCHER": str(s.run_dispatcher).lower(),
        # no probe server: several workers share a host (and a test may give one a port)
        "HERALD_WORKER_METRICS_PORT": "0",
    }

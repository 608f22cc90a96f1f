"""SecantusDB (MongoDB wire protocol over WiredTiger) as a child process.

Findings against secantusdb 0.7.0b3 with pymongo 4.20 ``AsyncMongoClient``:

- It advertises itself as a single-node replica set named ``secantus`` whose
  only member is the ``--host:--port`` it listens on. So both
  ``mongodb://127.0.0.1:P/?directConnection=true`` and
  ``mongodb://127.0.0.1:P/?replicaSet=secantus`` work; ``.uri`` uses the
  direct form (no discovery round-trip, same string shape as a mongod URI).
- Multi-document transactions (``start_session`` + ``start_transaction``),
  unique indexes (``DuplicateKeyError``, code 11000) and change streams work
  with no extra URI option; ``retryWrites`` may stay at its default (on).
- ``--sync-on-commit`` fsyncs every commit: a SIGKILL after an acknowledged
  write loses nothing. ``:memory:`` storage (``data_dir=None``) is an
  ephemeral temp folder the server deletes on a clean shutdown.
- ``--config`` points at an empty file so a stray ``./secantusd.toml`` or
  ``~/.secantus/secantusd.toml`` can never change the test server.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pymongo import AsyncMongoClient

from devstack.process import LoopbackService, ManagedProcess, free_port

__all__ = ["SecantusServer"]


class SecantusServer(LoopbackService):
    """A SecantusDB server on 127.0.0.1.

    ``data_dir`` holds the WiredTiger files (kept across restarts); ``None``
    means in-memory. ``test_commands`` enables mongod's test-only commands
    (``configureFailPoint``). ``port`` defaults to a free one, fixed for the life of
    the object so ``stop()``/``start()`` keeps the same URI.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        *,
        log_dir: Path | None = None,
        sync_on_commit: bool = True,
        test_commands: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port = port if port is not None else free_port()
        if log_dir is None:
            log_dir = self.data_dir.parent if self.data_dir is not None else None
        # Without a data folder (in-memory) the log and config need a home.
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="herald-secantus-")
            log_dir = Path(self._tmp.name)
        self.log_dir = Path(log_dir)
        config = self.log_dir / "secantusd.toml"
        argv = [
            sys.executable, "-m", "secantus",
            "--config", str(config),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", str(self.data_dir) if self.data_dir is not None else ":memory:",
            "--log-level", "WARNING",
        ]  # fmt: skip
        if sync_on_commit:
            argv.append("--sync-on-commit")
        if test_commands:  # `configureFailPoint` (fault-injection tests)
            argv.append("--enable-test-commands")
        self._config = config
        self.process = ManagedProcess(f"secantus-{self.port}", argv, self.log_dir)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _spawn(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._config.touch()
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process.start()

    async def _probe(self) -> None:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.uri, serverSelectionTimeoutMS=2000
        )
        try:
            await client.admin.command("ping")
        finally:
            await client.close()

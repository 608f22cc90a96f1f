"""Redis for the edge: one ``redis-server`` on a free loopback port, or a
Redis Cluster of N masters (no replicas) on loopback.

Debian's ``redis-server`` 7.0 (``scripts/install-edge-packages``); nothing is
persisted (``--save ""``, no AOF) unless a data folder is asked to keep it, so
``kill()`` + ``start()`` is a Redis that lost every key, on the same port.
A cluster node's bus port is picked free too (``--cluster-port``), not
port+10000, which may be taken or past 65535.

Usage::

    with RedisServer() as redis_server:     # redis_server.url, .address, .port
        ...
    with RedisCluster(masters=3) as cluster:  # cluster.addresses, .startup_nodes
        ...

``python -m devstack.redis [--cluster N]`` starts one (or a cluster) in the
foreground and prints its addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from devstack.process import LoopbackService, ManagedProcess, StartupError, free_port, run_sync

__all__ = ["INSTALL_HINT", "RedisCluster", "RedisServer", "command", "redis_binaries"]

INSTALL_HINT = "run scripts/install-edge-packages (Debian packages redis-server redis-tools)"


def redis_binaries() -> tuple[str, str]:
    """(redis-server, redis-cli); raises StartupError naming what is missing."""
    server = shutil.which("redis-server") or _sbin("redis-server")
    cli = shutil.which("redis-cli")
    missing = [name for name, path in (("redis-server", server), ("redis-cli", cli)) if not path]
    if missing or server is None or cli is None:
        raise StartupError(f"{' and '.join(missing)} not found; {INSTALL_HINT}")
    return server, cli


async def command(client: Redis, *args: str | int) -> Any:
    """``execute_command`` with a type (redis-py leaves it untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.exists() else None


class RedisServer(LoopbackService):
    default_timeout = 20.0

    """One redis-server on 127.0.0.1:``port`` (free by default, fixed for life)."""

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
        cluster: bool = False,
        persist: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port if port is not None else free_port()
        self.cluster = cluster
        self.bus_port = free_port() if cluster else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"herald-redis-{self.port}-")
            data_dir = Path(self._tmp.name)
        self.data_dir = Path(data_dir)
        server, _ = redis_binaries()
        argv = [
            server,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--logfile", "",
            "--loglevel", "warning",
            "--maxclients", "10000",
        ]  # fmt: skip
        if not persist:
            argv += ["--save", "", "--appendonly", "no"]
        if cluster:
            argv += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", "2000",
                "--cluster-port", str(self.bus_port),
            ]  # fmt: skip
        argv += list(extra_args)
        self.process = ManagedProcess(f"redis-{self.port}", argv, self.data_dir)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        """A redis-py asyncio client for this one node (no cluster routing)."""
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    async def _probe(self) -> None:
        client = Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.cluster:
            # a restarted node must not come back remembering an old cluster
            (self.data_dir / f"nodes-{self.port}.conf").unlink(missing_ok=True)
        self.process.start()

    def kill(self) -> None:
        """SIGKILL: every key is gone (nothing persisted by default)."""
        self.process.kill()


class RedisCluster:
    """``masters`` cluster-enabled redis-servers joined by ``redis-cli --cluster create``."""

    def __init__(self, masters: int = 3, *, base_dir: Path | None = None) -> None:
        if masters < 3:
            raise ValueError("Redis Cluster needs at least 3 masters")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="herald-redis-cluster-")
            base_dir = Path(self._tmp.name)
        self.base_dir = Path(base_dir)
        self.nodes = [
            RedisServer(cluster=True, data_dir=self.base_dir / f"node-{i}") for i in range(masters)
        ]

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    @property
    def startup_nodes(self) -> list[str]:
        return self.addresses

    def node_at(self, address: str) -> RedisServer:
        for node in self.nodes:
            if node.address == address:
                return node
        raise KeyError(address)

    def _create(self) -> None:
        _, cli = redis_binaries()
        argv = [
            cli, "--cluster", "create", *self.addresses,
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise StartupError(
                f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}"
            )

    async def _wait_converged(self, timeout: float) -> None:
        """Every node says cluster_state:ok and maps all 16384 slots to the masters."""
        deadline = time.monotonic() + timeout
        expected = sorted(node.port for node in self.nodes)
        while True:
            ok = True
            for node in self.nodes:
                client = node.client()
                try:
                    info = await command(client, "CLUSTER", "INFO")
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    slots = await command(client, "CLUSTER", "SLOTS")
                finally:
                    await client.aclose()
                covered = sum(int(r[1]) - int(r[0]) + 1 for r in slots)
                ports = sorted({int(r[2][1]) for r in slots})
                if "cluster_state:ok" not in text or covered != 16384 or ports != expected:
                    ok = False
                    break
            if ok:
                return
            if time.monotonic() > deadline:
                raise StartupError(f"redis cluster did not converge in {timeout:.0f}s")
            await asyncio.sleep(0.1)

    def start(self, timeout: float = 30.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            run_sync(lambda: self._wait_converged(timeout))
        except BaseException:
            self.stop()
            raise

    async def slot_owner(self, slot: int) -> str:
        """The address of the master serving ``slot`` (asked of the first node)."""
        client = self.nodes[0].client()
        try:
            ranges = await command(client, "CLUSTER", "SLOTS")
        finally:
            await client.aclose()
        for first, last, master, *_ in ranges:
            if int(first) <= slot <= int(last):
                host = master[0].decode() if isinstance(master[0], bytes) else master[0]
                return f"{host or '127.0.0.1'}:{int(master[1])}"
        raise LookupError(f"slot {slot} is not served")

    async def keyslot(self, key: str) -> int:
        client = self.nodes[0].client()
        try:
            return int(await command(client, "CLUSTER", "KEYSLOT", key))
        finally:
            await client.aclose()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisCluster:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.redis", description=__doc__)
    parser.add_argument("--port", type=int, default=None, help="standalone port (default: free)")
    parser.add_argument("--cluster", type=int, default=0, metavar="N", help="N-master cluster")
    args = parser.parse_args(argv)
    if args.cluster:
        cluster = RedisCluster(args.cluster)
        cluster.start()
        print("redis cluster:", " ".join(cluster.addresses), flush=True)
        stopper: RedisCluster | RedisServer = cluster
    else:
        server = RedisServer(args.port)
        server.start()
        print("redis:", server.url, flush=True)
        stopper = server
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stopper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

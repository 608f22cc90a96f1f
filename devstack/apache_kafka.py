"""A single-node KRaft Apache Kafka broker built from Maven Central jars.

There is no Kafka distribution tarball to download here (only Maven Central
is reachable), so ``ensure_kafka_libs()`` asks Maven for ``kafka_2.13`` and
its runtime closure and copies the jars into
``<cache>/<version>/libs`` (``<cache>`` = ``$HERALD_KAFKA_CACHE`` or
``<repo>/.cache/kafka``). A ``.complete`` marker makes the second call a
no-op. Maven keeps its own copy in ``~/.m2``, so a wiped cache is rebuilt
from there without the network.

``ApacheKafkaBroker`` runs one combined broker+controller node on 127.0.0.1
with the jars and the machine's Java 17. The controller quorum is *static*
(``controller.quorum.voters``), so the controller port is not baked into
the formatted storage and a restart may use any port; the broker port stays
the one given to the constructor across ``stop()``/``start()``.

CLI::

    python -m devstack.apache_kafka fetch                   # assemble the jars (CI)
    python -m devstack.apache_kafka run --port 9092 --dir D # foreground broker
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from devstack.process import ManagedProcess, free_port, kafka_metadata_ready, run_sync

__all__ = [
    "KAFKA_VERSION",
    "ApacheKafkaBroker",
    "ensure_kafka_libs",
    "kafka_cache_root",
]

KAFKA_VERSION = "4.2.2"
# Kafka logs through slf4j 1.7 and ships log4j-core 2.x but no binding between
# them; without log4j-slf4j-impl the broker would log nothing. Pinned to the
# log4j-core that kafka-server 4.2.2 brings, so Maven keeps the two aligned.
LOG4J_VERSION = "2.25.5"

_MARKER = ".complete"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>herald.devstack</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

# Console only: the launcher captures stdout into its log file. Request and
# state-change chatter is turned down so a test failure's log tail is useful.
_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d{HH:mm:ss,SSS}] %-5p %m (%c{1})%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="stdout"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="WARN"/>
    <Logger name="kafka.log" level="WARN"/>
    <Logger name="org.apache.kafka.storage" level="WARN"/>
  </Loggers>
</Configuration>
"""

# A small heap and the serial collector suit a 2-core box running several
# services at once; C1-only JIT trims ~0.5 s (10%) off start-up and test
# traffic is far too light for C2's peak speed to matter.
_JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


def kafka_cache_root() -> Path:
    override = os.environ.get("HERALD_KAFKA_CACHE")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / ".cache" / "kafka"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise assembly between processes (e.g. parallel pytest workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_libs(version: str = KAFKA_VERSION, *, quiet: bool = True) -> Path:
    """Return ``<cache>/<version>/libs``, assembling it with Maven if needed."""
    home = kafka_cache_root() / version
    libs = home / "libs"
    if (libs / _MARKER).is_file():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError(
            "Maven (mvn) is needed to assemble the Kafka jars: apt-get install maven"
        )
    with _locked(home / ".lock"):
        if (libs / _MARKER).is_file():  # another process finished meanwhile
            return libs
        pom = home / "pom.xml"
        pom.write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
        cmd = [
            "mvn", "-B", "-f", str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]  # fmt: skip
        if quiet:
            cmd.insert(2, "-q")
        result = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = (result.stdout or "") + (result.stderr or "")
            raise RuntimeError(
                f"mvn failed ({result.returncode}) assembling Kafka {version}:\n{output[-4000:]}"
            )
        # Swap in the complete folder at once, so a crash mid-copy never
        # leaves a half-filled libs/ that looks usable.
        shutil.rmtree(libs, ignore_errors=True)
        staging.chmod(0o755)  # mkdtemp makes it owner-only
        staging.rename(libs)
        (libs / _MARKER).write_text(f"kafka {version}\nlog4j {LOG4J_VERSION}\n")
    return libs


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding.

    Kafka itself rejects ids starting with '-' (they read as CLI flags).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class ApacheKafkaBroker:
    """A single-node KRaft Apache Kafka broker on 127.0.0.1:``port``.

    ``work_dir`` holds ``server.properties``, the log4j2 config, the broker
    log (``kafka-<port>.log``) and the data (``data/``); it survives
    ``stop()``/``start()``, so produced records and committed offsets do too.
    """

    def __init__(
        self,
        work_dir: Path,
        port: int | None = None,
        *,
        version: str = KAFKA_VERSION,
        java: str = "java",
        extra_properties: dict[str, str] | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.port = port if port is not None else free_port()
        self.version = version
        self.java = java
        self.extra_properties = dict(extra_properties or {})
        self.data_dir = self.work_dir / "data"
        self.config_path = self.work_dir / "server.properties"
        self._log4j_path = self.work_dir / "log4j2.xml"
        self.controller_port = 0
        self.process: ManagedProcess | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running

    def _properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions: creating 50 of each on first use
            # costs seconds on a small box and buys nothing on one node.
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the restarted node's controller still holds the
            # dead incarnation's registration and answers
            # DUPLICATE_BROKER_REGISTRATION until that session expires
            # (default 9 s); a shorter session makes crash tests quicker.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
        }
        props.update(self.extra_properties)
        return props

    def _write_config(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{key}={value}\n" for key, value in self._properties().items())
        self.config_path.write_text(text)
        self._log4j_path.write_text(_LOG4J2_XML)

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            self.java,
            *_JVM_OPTS,
            f"-Dlog4j2.configurationFile={self._log4j_path}",
            "-cp",
            f"{libs}/*",  # expanded by the JVM, not the shell
            main,
            *args,
        ]

    def _format_if_needed(self, libs: Path) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        cmd = self._java(
            libs, "kafka.tools.StorageTool", "format",
            "-t", _cluster_id(), "-c", str(self.config_path),
        )  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")

    def _prepare(self) -> Path:
        """Jars, config and formatted storage: the blocking part of a start."""
        if self.is_running:
            raise RuntimeError(f"Kafka on port {self.port} is already running")
        if shutil.which(self.java) is None:
            raise RuntimeError(f"{self.java!r} not found: Kafka {self.version} needs Java 17+")
        libs = ensure_kafka_libs(self.version)
        # A fresh controller port per start: nothing on disk remembers it.
        self.controller_port = free_port()
        self._write_config()
        self._format_if_needed(libs)
        return libs

    def _spawn(self, libs: Path) -> ManagedProcess:
        self.process = ManagedProcess(
            f"kafka-{self.port}",
            self._java(libs, "kafka.Kafka", str(self.config_path)),
            self.work_dir,
        )
        self.process.start()
        return self.process

    def _wait(self, process: ManagedProcess, timeout: float) -> Callable[[], Awaitable[None]]:
        async def wait() -> None:
            await process.wait_ready(
                self.port, lambda: kafka_metadata_ready(self.bootstrap_servers), timeout=timeout
            )

        return wait

    def start(self, timeout: float = 90.0) -> None:
        """Start and block until a metadata request lists the broker."""
        process = self._spawn(self._prepare())
        try:
            run_sync(self._wait(process, timeout))
        except BaseException:
            process.kill()
            raise

    async def start_async(self, timeout: float = 90.0) -> None:
        # Maven and the storage format run in a worker thread so the caller's
        # event loop keeps serving; the broker itself is spawned from this
        # thread, where its parent-death signal stays armed.
        libs = await asyncio.to_thread(self._prepare)
        process = self._spawn(libs)
        try:
            await self._wait(process, timeout)()
        except BaseException:
            process.kill()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM); SIGKILL after ``timeout`` seconds."""
        if self.process is not None:
            self.process.stop(timeout)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def close(self) -> None:
        """Same as ``stop()``: the work folder belongs to the caller."""
        self.stop()

    def __enter__(self) -> ApacheKafkaBroker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.apache_kafka", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="assemble the Kafka jars into the cache (idempotent)")
    fetch.add_argument("--version", default=KAFKA_VERSION)
    run = sub.add_parser("run", help="run a broker in the foreground until Ctrl-C")
    run.add_argument("--port", type=int, default=9092)
    run.add_argument("--dir", type=Path, required=True, help="work folder (config, log, data)")
    run.add_argument("--version", default=KAFKA_VERSION)
    args = parser.parse_args(argv)

    if args.command == "fetch":
        started = time.monotonic()
        libs = ensure_kafka_libs(args.version, quiet=False)
        jars = len(list(libs.glob("*.jar")))
        print(f"Kafka {args.version}: {jars} jars in {libs} ({time.monotonic() - started:.1f}s)")
        return 0

    broker = ApacheKafkaBroker(args.dir, args.port, version=args.version)
    started = time.monotonic()
    broker.start()
    assert broker.process is not None
    elapsed = time.monotonic() - started
    print(
        f"Kafka {args.version} ready on {broker.bootstrap_servers} in {elapsed:.1f}s;"
        f" log {broker.process.log_path}; Ctrl-C stops it",
        flush=True,
    )
    try:
        while broker.is_running:
            time.sleep(0.5)
        print(f"Kafka exited with code {broker.process.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


if __name__ == "__main__":
    raise SystemExit(_main())

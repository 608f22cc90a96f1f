"""Child-process plumbing shared by the dev-stack launchers.

A launcher owns one ``ManagedProcess``: it starts a command with its output in
a log file, waits until the service answers, and stops it (politely, then
not). Tests use ``kill()`` to simulate a crash.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Self, TypeVar

__all__ = [
    "ManagedProcess",
    "StartupError",
    "free_port",
    "kafka_metadata_ready",
    "port_open",
    "run_sync",
]

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A child service died or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago.

    The kernel picks it; a small race remains until the child binds it, which
    is acceptable on a test box where nothing else grabs loopback ports.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when its parent dies.

    Resolved in the parent so the forked child only makes one libc call (a
    preexec_fn must do as little as possible when other threads exist).
    PDEATHSIG fires when the *thread* that forked the child exits, so it is
    only armed when spawning from the main thread; a child spawned from a
    worker thread would otherwise die when that thread is recycled.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return arm


# Every live child, so interpreter exit stops them even when a caller forgot
# to (PDEATHSIG covers a hard parent crash; this covers a normal exit).
_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5.0)


class ManagedProcess:
    """One child process with its stdout+stderr in ``log_dir/<name>.log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_dir) / f"{name}.log"
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> None:
        if self.is_running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Append, so a restart keeps the previous run's log for post-mortems.
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log.write(
            f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode()
        )
        self._log.flush()
        env = {**os.environ, **self._env} if self._env is not None else None
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self._cwd,
            preexec_fn=_pdeathsig_preexec(),  # safe: see _pdeathsig_preexec
            # Own session: a Ctrl-C in the terminal reaches only Herald, which
            # then stops its API before the broker and store it depends on.
            start_new_session=True,
        )
        _LIVE.add(self)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                popen.wait()
        self._reap()
        return popen.returncode

    def kill(self) -> None:
        """SIGKILL at once: a crash, for fault-injection tests."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
            popen.wait()
        self._reap()

    def _reap(self) -> None:
        _LIVE.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def startup_error(self, reason: str) -> StartupError:
        return StartupError(
            f"{self.name}: {reason} (log {self.log_path}); last lines:\n{self.log_tail()}"
        )

    async def wait_ready(
        self,
        port: int,
        probe: Callable[[], Awaitable[object]] | None = None,
        *,
        timeout: float = 60.0,
        host: str = "127.0.0.1",
    ) -> None:
        """Wait until ``host:port`` accepts connections and ``probe()`` succeeds.

        The probe is retried (any exception = not ready yet) until the
        deadline. A child that exits meanwhile fails fast with its log tail.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if not self.is_running:
                raise self.startup_error(f"exited with code {self.returncode} before it was ready")
            if time.monotonic() > deadline:
                detail = f"; last probe error: {last_error!r}" if last_error else ""
                # an HTTP probe's answer says why (e.g. /readyz's checks and progress)
                answer = getattr(getattr(last_error, "response", None), "text", "")
                if answer:
                    detail += f"; its answer: {answer[:500]}"
                raise self.startup_error(f"not ready on {host}:{port} after {timeout:.0f}s{detail}")
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                if probe is not None:
                    remaining = max(deadline - time.monotonic(), 1.0)
                    await asyncio.wait_for(probe(), min(remaining, 15.0))
                return
            except (OSError, TimeoutError) as exc:
                last_error = exc
            except Exception as exc:  # any probe failure means "not yet"
                last_error = exc
            await asyncio.sleep(0.1)


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code.

    Works whether or not the calling thread already runs an event loop (a
    sync pytest fixture under pytest-asyncio, or ``herald dev``): the
    coroutine gets a fresh loop in a helper thread.
    """
    result: list[T] = []
    error: list[BaseException] = []

    async def main() -> None:
        result.append(await factory())

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller
            error.append(exc)

    thread = threading.Thread(target=target, name="devstack-probe", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def kafka_metadata_ready(bootstrap_servers: str) -> None:
    """Succeed once a Kafka metadata request lists at least one broker.

    A bare open port is not enough: a KRaft broker accepts connections
    before it has registered with its controller. aiokafka is imported here
    so the process helpers stay importable without it.
    """
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        if not metadata.brokers():
            raise ConnectionError(f"{bootstrap_servers}: metadata lists no broker yet")
    finally:
        await client.close()


class LoopbackService:
    """The lifecycle every single-port service here shares: spawn the process,
    wait until its port is open and `_probe` answers, stop/kill, and clean
    up a temporary folder. Subclasses set `process`, `port` and `_tmp`, and
    override `_spawn` (to prepare folders) and `_probe`."""

    process: ManagedProcess
    port: int
    host: str = "127.0.0.1"
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    default_timeout: float = 30.0

    @property
    def is_running(self) -> bool:
        return self.process.is_running

    def _spawn(self) -> None:
        self.process.start()

    async def _probe(self) -> None:
        """Raise until the service answers a real request (the port alone is not enough)."""

    def start(self, timeout: float | None = None) -> None:
        """Start and block until ready (works with or without a running event loop)."""
        self._spawn()
        wait = timeout or self.default_timeout
        try:
            run_sync(lambda: self._ready(wait))
        except BaseException:
            self.kill()
            raise

    async def start_async(self, timeout: float | None = None) -> None:
        self._spawn()
        try:
            await self._ready(timeout or self.default_timeout)
        except BaseException:
            self.kill()
            raise

    async def _ready(self, timeout: float) -> None:
        await self.process.wait_ready(self.port, self._probe, timeout=timeout, host=self.host)

    def stop(self, timeout: float = 10.0) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()

    def close(self) -> None:
        """Stop and remove the temporary folder, if one was made."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

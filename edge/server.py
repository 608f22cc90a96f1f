"""Run an edge node: render its prefix, check it with ``nginx -t``, start nginx
in the foreground as a child (``devstack.process.ManagedProcess``), wait until it
answers, stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from devstack.process import LoopbackService, ManagedProcess, StartupError
from edge.config import EdgeConfig
from edge.render import NGINX_MODULES_DIR, nginx_argv, render

__all__ = [
    "INSTALL_HINT",
    "EdgeNotInstalledError",
    "EdgeServer",
    "find_nginx",
    "http_get",
    "missing_components",
    "parse_metrics",
    "require_installed",
]

INSTALL_HINT = (
    "run scripts/install-edge-packages (Debian packages nginx-light "
    "libnginx-mod-http-lua lua-nginx-redis redis-server redis-tools)"
)

_LUA_REDIS_CANDIDATES = (
    Path("/usr/share/lua/5.1/nginx/redis.lua"),
    Path("/usr/local/share/lua/5.1/nginx/redis.lua"),
)


class EdgeNotInstalledError(StartupError):
    """nginx, its Lua module or the Lua Redis client is missing."""


def find_nginx() -> str | None:
    explicit = os.environ.get("HERALD_NGINX")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def missing_components() -> list[str]:
    """What the edge needs and this machine lacks (empty when all is there)."""
    missing = []
    if find_nginx() is None:
        missing.append("nginx (package nginx-light)")
    if not (NGINX_MODULES_DIR / "ngx_http_lua_module.so").exists():
        missing.append(f"{NGINX_MODULES_DIR}/ngx_http_lua_module.so (libnginx-mod-http-lua)")
    if not (NGINX_MODULES_DIR / "ndk_http_module.so").exists():
        missing.append(f"{NGINX_MODULES_DIR}/ndk_http_module.so (libnginx-mod-http-ndk)")
    if not any(p.exists() for p in _LUA_REDIS_CANDIDATES):
        missing.append('Lua module "nginx.redis" (lua-nginx-redis)')
    return missing


def require_installed() -> str:
    """The nginx binary; raises ``EdgeNotInstalledError`` naming what is missing."""
    missing = missing_components()
    nginx = find_nginx()
    if missing or nginx is None:
        raise EdgeNotInstalledError(f"edge: missing {', '.join(missing)}; {INSTALL_HINT}")
    return nginx


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format → {"name{labels}": value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


async def http_get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """A minimal HTTP/1.0 GET (no third-party client in the production path)."""

    async def go() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body

    return await asyncio.wait_for(go(), timeout)


class EdgeServer(LoopbackService):
    """One nginx edge node run from ``prefix`` (a temp folder by default)."""

    default_timeout = 20.0

    def __init__(
        self,
        config: EdgeConfig,
        prefix: Path | None = None,
        *,
        nginx: str | None = None,
    ) -> None:
        self.config = config
        self.host, self.port = config.listen_address
        if prefix is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"herald-edge-{config.name}-")
            prefix = Path(self._tmp.name)
        self.prefix = Path(prefix).resolve()
        self._nginx = nginx
        self.process = ManagedProcess(f"nginx-{config.name}", ["nginx"], self.prefix / "logs")

    # ------------------------------------------------------------ addresses
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def status_url(self) -> str:
        address = self.config.status_address
        if address is None:
            raise RuntimeError(f"edge {self.config.name} has no status listener")
        return f"http://{address[0]}:{address[1]}"

    @property
    def metrics_url(self) -> str:
        return f"{self.status_url}/edge-metrics"

    # ------------------------------------------------------------ lifecycle
    def render(self) -> list[str]:
        """Write the prefix and return the nginx command line."""
        nginx = self._nginx or require_installed()
        render(self.config, self.prefix)
        return nginx_argv(nginx, self.prefix)

    def check(self) -> None:
        """``nginx -t`` on the rendered prefix; raises StartupError with its output."""
        argv = [*self.render(), "-t"]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StartupError(
                f"edge {self.config.name}: nginx -t failed:\n{result.stdout}{result.stderr}"
            )

    def _spawn(self) -> None:
        self.check()
        self.process.argv = self.render()
        self.process.start()

    async def _probe(self) -> None:
        address = self.config.status_address
        if address is None:
            return
        status, _ = await http_get(address[0], address[1], "/edge-health")
        if status != 200:
            raise ConnectionError(f"edge health answered {status}")

    def reload(self) -> None:
        """Re-render and ask the master to reload (SIGHUP): new workers, same ports."""
        self.check()
        pid = self.process.pid
        if pid is None or not self.process.is_running:
            raise RuntimeError(f"edge {self.config.name} is not running")
        os.kill(pid, signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL the master and its workers (a killed master leaves its
        workers serving; they share its process group, the child's own session)."""
        pid = self.process.pid
        if pid is not None and self.process.is_running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.process.kill()

    # ------------------------------------------------------------- insight
    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return parse_metrics(response.read().decode())

    def error_log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.prefix / "logs" / "error.log").read_text(errors="replace")
        except OSError:
            return "(no error log)"
        return "\n".join(text.splitlines()[-lines:])

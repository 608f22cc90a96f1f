"""The edge in front of a dev server: a private redis-server plus one nginx
node proxying to the app, both children of the caller. Meant for
``herald dev --edge``::

    if edge_available():
        dev_edge = DevEdge(app_port=8000, listen_port=8080, log_dir=data_dir / "edge")
        dev_edge.start()          # http://127.0.0.1:8080 -> app, metrics on dev_edge.metrics_url
        ...
        dev_edge.stop()
"""

from __future__ import annotations

from pathlib import Path

from devstack.process import StartupError, free_port
from devstack.redis import RedisServer, redis_binaries
from edge.config import EdgeConfig
from edge.server import EdgeServer, missing_components

__all__ = ["DevEdge", "edge_available"]


def edge_available() -> bool:
    """nginx with the Lua module, nginx.redis and redis-server are installed."""
    if missing_components():
        return False
    try:
        redis_binaries()
    except StartupError:
        return False
    return True


class DevEdge:
    """redis-server + an edge on ``listen_port`` in front of ``app_port``."""

    def __init__(
        self,
        app_port: int,
        *,
        listen_port: int,
        log_dir: Path,
        status_port: int | None = None,
        redis_address: str | None = None,
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.redis: RedisServer | None = None
        if redis_address is None:
            self.redis = RedisServer(data_dir=self.log_dir / "redis")
            redis_address = self.redis.address
        self.redis_url = f"redis://{redis_address}/0"  # for HERALD_EDGE_REDIS_URL
        self.server = EdgeServer(
            EdgeConfig(
                name="dev",
                listen=f"127.0.0.1:{listen_port}",
                status_listen=f"127.0.0.1:{status_port or free_port()}",
                upstreams=(f"127.0.0.1:{app_port}",),
                redis_nodes=(redis_address,),
                worker_processes=1,
                max_body_bytes=max_body_bytes,
            ),
            self.log_dir / "nginx",
        )

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def metrics_url(self) -> str:
        return self.server.metrics_url

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
        try:
            self.server.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.server.stop()
        if self.redis is not None:
            self.redis.stop()

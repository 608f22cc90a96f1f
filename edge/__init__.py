"""Herald's edge: nginx + Lua + Redis in front of the API (DESIGN.md invariant 3).

A POST carrying an ``Idempotency-Key`` on a configured path is claimed in
Redis (``SET NX PX``) before it reaches Python: a duplicate gets the stored
response (``Idempotent-Replayed: true``), 409 while the first is in flight
(202 on queued paths), 422 with a different body, and an invalid key gets 400
- all as ``application/problem+json``. Several edges share one Redis (or a
Redis Cluster, keys routed by hash slot), so duplicates arriving at different
edges still execute once. When Redis is down or slow the edge fails open and
the app's own idempotency check decides.

- ``edge/nginx.conf.template`` + ``edge/lua/herald_edge/*.lua``: the node;
- ``edge.config.EdgeConfig``: its parameters; ``edge.render``: the prefix;
- ``edge.server.EdgeServer``: run it as a child process;
- ``python -m edge --help``: render / run / check from the command line.
"""

from __future__ import annotations

from edge.config import (
    DEFAULT_KEY_PREFIX,
    PROBLEM_TYPES,
    EdgeConfig,
    caller_scope,
    redis_key,
)
from edge.render import render
from edge.server import (
    INSTALL_HINT,
    EdgeNotInstalledError,
    EdgeServer,
    missing_components,
    parse_metrics,
    require_installed,
)

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "INSTALL_HINT",
    "PROBLEM_TYPES",
    "EdgeConfig",
    "EdgeNotInstalledError",
    "EdgeServer",
    "caller_scope",
    "missing_components",
    "parse_metrics",
    "redis_key",
    "render",
    "require_installed",
]

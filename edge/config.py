"""What one edge node is configured with, and the names it uses in Redis.

``EdgeConfig`` is the single source for rendering ``nginx.conf`` and the Lua
configuration table (see ``edge.render``). ``redis_key`` computes the Redis key
the Lua code uses for an Idempotency-Key, so tests and operators can find it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from web.problems import PROBLEM_TYPE_BASE

__all__ = [
    "DAY_MS",
    "DEFAULT_GENERATION_KEY",
    "DEFAULT_KEY_PREFIX",
    "PROBLEM_BASE",
    "PROBLEM_TYPES",
    "EdgeConfig",
    "caller_scope",
    "parse_address",
    "redis_key",
]

DAY_MS = 24 * 3600 * 1000
DEFAULT_KEY_PREFIX = "herald:idem:"
# The publication generation of the edge cache: the app sets a new value on
# every change of the public view of a card (HERALD_EDGE_GENERATION_KEY).
DEFAULT_GENERATION_KEY = "herald:edge:generation"
PROBLEM_BASE = PROBLEM_TYPE_BASE  # one base URI for the app and the edge

# The RFC 9457 problem types of the idempotency refusals, shared with the app
# (web/idempotency/ answers with the same type URIs and codes). The
# edge never sends "missing": it lets a POST without a key through, and the
# app refuses a mutation without one.
PROBLEM_TYPES: dict[str, tuple[int, str, str]] = {
    "missing": (400, PROBLEM_BASE + "idempotency-key-missing", "IDEMPOTENCY_KEY_MISSING"),
    "invalid": (400, PROBLEM_BASE + "idempotency-key-invalid", "IDEMPOTENCY_KEY_INVALID"),
    "in_progress": (409, PROBLEM_BASE + "request-in-progress", "REQUEST_IN_PROGRESS"),
    "reused": (422, PROBLEM_BASE + "idempotency-key-reused", "IDEMPOTENCY_KEY_REUSED"),
}

_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def parse_address(value: str, *, what: str = "address") -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) → (host, port); raises ValueError."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\s\[\]]+):(\d+)", value.strip())
    if match is None:
        raise ValueError(f"{what} must be host:port, got {value!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"{what} port out of range in {value!r}")
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def caller_scope(authorization: str | None) -> str:
    """The caller part of a key, as the Lua code computes it.

    The edge cannot verify a JWT, so it scopes by the Authorization header
    value itself: the first 32 hex digits of its SHA-256, or ``anonymous``.
    """
    if not authorization:
        return "anonymous"
    return hashlib.sha256(authorization.encode("utf-8")).hexdigest()[:32]


def redis_key(
    idempotency_key: str,
    authorization: str | None = None,
    prefix: str = DEFAULT_KEY_PREFIX,
) -> str:
    """The Redis key under which the edge keeps ``idempotency_key``'s record."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"{prefix}{caller_scope(authorization)}:{digest}"


@dataclass(frozen=True)
class EdgeConfig:
    """One nginx edge node.

    ``listen``/``status_listen``/``upstreams``/``redis_nodes`` are
    ``host:port`` strings. ``paths`` are the exact locations (``location =``)
    where POSTs carrying an Idempotency-Key are deduplicated; ``queued_paths``
    (a subset) answer a duplicate of an in-flight request with 202 instead of
    409. Everything else is proxied to the app untouched.

    ``cache_paths`` (a subset of ``paths``) answer anonymous GETs from nginx's
    proxy cache, keyed by the publication generation read from Redis under
    ``cache_generation_key``, for as long as the app's Cache-Control allows
    (``cache_zone_mb`` of keys, ``cache_max_size_mb`` of bodies on disk,
    unused entries dropped after ``cache_inactive_s``); empty: no cache.
    """

    listen: str
    upstreams: tuple[str, ...]
    redis_nodes: tuple[str, ...]
    status_listen: str | None = None
    redis_cluster: bool = False
    redis_password: str | None = None
    paths: tuple[str, ...] = ("/graphql",)
    queued_paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("POST",)
    name: str = "edge"
    key_prefix: str = DEFAULT_KEY_PREFIX
    key_ttl_ms: int = DAY_MS
    lock_ttl_ms: int = 60_000
    redis_connect_timeout_ms: int = 50
    redis_read_timeout_ms: int = 100
    redis_backoff_ms: int = 200
    redis_backoff_after_timeouts: int = 3
    redis_pool_size: int = 64
    redis_idle_timeout_ms: int = 30_000
    max_body_bytes: int = 1024 * 1024
    max_stored_bytes: int = 1024 * 1024
    upstream_connect_timeout_s: int = 5
    upstream_timeout_s: int = 30
    upstream_keepalive: int = 64
    worker_processes: int | str = "auto"
    worker_connections: int = 4096
    access_log: bool = False
    error_log_level: str = "warn"
    resolver: str | None = None
    extra_http: tuple[str, ...] = field(default=())
    cache_paths: tuple[str, ...] = ("/graphql",)
    cache_generation_key: str = DEFAULT_GENERATION_KEY
    cache_zone_mb: int = 10
    cache_max_size_mb: int = 256
    cache_inactive_s: int = 600

    def __post_init__(self) -> None:
        self.validate()

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_address(self.listen, what="listen")

    @property
    def status_address(self) -> tuple[str, int] | None:
        if self.status_listen is None:
            return None
        return parse_address(self.status_listen, what="status_listen")

    def validate(self) -> None:
        parse_address(self.listen, what="listen")
        if self.status_listen is not None:
            parse_address(self.status_listen, what="status_listen")
        if not self.upstreams:
            raise ValueError("at least one upstream (the app) is required")
        for upstream in self.upstreams:
            parse_address(upstream, what="upstream")
        if not self.redis_nodes:
            raise ValueError("at least one Redis node is required")
        for node in self.redis_nodes:
            host, _ = parse_address(node, what="redis node")
            if not _is_ip(host) and self.resolver is None:
                raise ValueError(
                    f"redis node {node!r}: nginx cosockets resolve names only with a "
                    "resolver; give an IP address or set resolver"
                )
        if not self.redis_cluster and len(self.redis_nodes) != 1:
            raise ValueError("standalone Redis takes exactly one node (or set redis_cluster)")
        if not self.paths:
            raise ValueError("at least one idempotent path is required")
        for path in (*self.paths, *self.queued_paths):
            if not _PATH.fullmatch(path):
                raise ValueError(f"path {path!r}: only /[A-Za-z0-9._~/-]* is accepted")
        if not set(self.queued_paths) <= set(self.paths):
            raise ValueError("queued_paths must be a subset of paths")
        if not set(self.cache_paths) <= set(self.paths):
            raise ValueError("cache_paths must be a subset of paths")
        if not self.cache_generation_key or any(c.isspace() for c in self.cache_generation_key):
            raise ValueError("cache_generation_key: a Redis key without whitespace")
        for name in ("cache_zone_mb", "cache_max_size_mb", "cache_inactive_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for method in self.methods:
            if method not in _METHODS:
                raise ValueError(f"method {method!r} not supported (one of {_METHODS})")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"name {self.name!r}: 1-64 of [A-Za-z0-9._-]")
        if self.key_ttl_ms < DAY_MS:
            raise ValueError("key_ttl_ms: keys live at least 24 hours (CONTRACT.md HTTP)")
        upstream_ms = (self.upstream_connect_timeout_s + self.upstream_timeout_s) * 1000
        if self.lock_ttl_ms <= upstream_ms:
            raise ValueError(
                f"lock_ttl_ms must exceed the upstream timeouts ({upstream_ms} ms), or a "
                "slow request's claim expires while it still runs"
            )
        for name in (
            "redis_connect_timeout_ms",
            "redis_read_timeout_ms",
            "redis_pool_size",
            "redis_backoff_after_timeouts",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.redis_backoff_ms < 0:
            raise ValueError("redis_backoff_ms must be >= 0")
        if self.max_body_bytes <= 0 or self.max_stored_bytes <= 0:
            raise ValueError("max_body_bytes and max_stored_bytes must be positive")
        if not (isinstance(self.worker_processes, int) or self.worker_processes == "auto"):
            raise ValueError("worker_processes: a number or 'auto'")
        if self.error_log_level not in ("debug", "info", "notice", "warn", "error", "crit"):
            raise ValueError(f"error_log_level {self.error_log_level!r} unknown")

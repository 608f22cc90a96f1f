"""Render an edge node's nginx prefix from ``EdgeConfig``.

The prefix is self-contained::

    PREFIX/conf/nginx.conf        from edge/nginx.conf.template
    PREFIX/conf/herald_edge.lua   the Lua configuration table
    PREFIX/lua/herald_edge/*.lua  a copy of edge/lua (so the prefix can be shipped)
    PREFIX/logs/ PREFIX/temp/     error log, pid file, every *_temp_path

and nginx runs from it unprivileged::

    nginx -p PREFIX -c conf/nginx.conf -e logs/error.log -g 'daemon off;'
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge.config import PROBLEM_BASE, EdgeConfig, parse_address

__all__ = [
    "INTERNAL_PREFIX",
    "LUA_SOURCE",
    "NGINX_MODULES_DIR",
    "TEMPLATE",
    "lua_literal",
    "nginx_argv",
    "render",
    "render_lua_config",
    "render_nginx_conf",
]

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.template"
LUA_SOURCE = HERE / "lua"
NGINX_MODULES_DIR = Path(os.environ.get("HERALD_NGINX_MODULES", "/usr/lib/nginx/modules"))
INTERNAL_PREFIX = "/_herald_edge_upstream"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "cache")

_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")

LuaValue = str | int | float | bool | None | Sequence["LuaValue"] | Mapping[str, "LuaValue"]


def lua_literal(value: LuaValue, indent: str = "") -> str:
    """A Lua expression for a JSON-like Python value (strings byte-escaped)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}"
            for b in value.encode("utf-8")
        )
        return f'"{escaped}"'
    inner = indent + "    "
    if isinstance(value, Mapping):
        items = [
            f"{inner}[{lua_literal(str(k))}] = {lua_literal(v, inner)},"
            for k, v in value.items()
            if v is not None
        ]
    else:
        items = [f"{inner}{lua_literal(v, inner)}," for v in value]
    if not items:
        return "{}"
    return "{\n" + "\n".join(items) + f"\n{indent}}}"


def render_lua_config(config: EdgeConfig) -> str:
    table: dict[str, LuaValue] = {
        "edge_name": config.name,
        "methods": list(config.methods),
        "key_prefix": config.key_prefix,
        "key_ttl_ms": config.key_ttl_ms,
        "lock_ttl_ms": config.lock_ttl_ms,
        "max_stored_bytes": config.max_stored_bytes,
        "problem_base": PROBLEM_BASE,
        "internal_prefix": INTERNAL_PREFIX,
        "cache_generation_key": config.cache_generation_key,
        "redis": {
            "mode": "cluster" if config.redis_cluster else "single",
            "nodes": list(config.redis_nodes),
            "password": config.redis_password,
            "connect_timeout_ms": config.redis_connect_timeout_ms,
            "read_timeout_ms": config.redis_read_timeout_ms,
            "backoff_ms": config.redis_backoff_ms,
            "backoff_after_timeouts": config.redis_backoff_after_timeouts,
            "pool_size": config.redis_pool_size,
            "idle_timeout_ms": config.redis_idle_timeout_ms,
        },
    }
    return (
        f"-- Herald edge {config.name!s}: rendered by edge/render.py; do not edit.\n"
        f"return {lua_literal(table)}\n"
    )


def _listen(address: str) -> str:
    host, port = parse_address(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _user_directive() -> str:
    # A root master would run its workers as "nobody", who cannot read a
    # prefix under a private temp folder: keep the caller's identity.
    if os.geteuid() != 0:
        return "# (not root: workers run as the current user)"
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


_FORWARD_HEADERS = """\
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;"""


# The read cache of a location (edge/lua/herald_edge/cache.lua decides, per
# request, whether the cache may answer and under which generation).
_CACHE_DIRECTIVES = """\
            set $herald_edge_generation "";
            set $herald_edge_nocache 1;
            rewrite_by_lua_block { require("herald_edge.cache").rewrite() }
            proxy_cache herald_edge_cache;
            proxy_cache_key "$herald_edge_generation|$scheme://$host$request_uri";
            proxy_cache_bypass $herald_edge_nocache;
            proxy_no_cache $herald_edge_nocache;
            proxy_cache_revalidate on;
            proxy_cache_use_stale updating;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_lock_age 5s;
            add_header X-Cache $herald_edge_cache_status always;
            log_by_lua_block { require("herald_edge.cache").log() }
"""


def _cache_http(config: EdgeConfig) -> str:
    if not config.cache_paths:
        return ""
    return f"""
    # The read cache: the app's Cache-Control decides what is kept and for how
    # long (no proxy_cache_valid); a missing status means nginx did not look.
    proxy_cache_path temp/cache levels=1:2 keys_zone=herald_edge_cache:{config.cache_zone_mb}m
                     max_size={config.cache_max_size_mb}m inactive={config.cache_inactive_s}s
                     use_temp_path=off;
    map $upstream_cache_status $herald_edge_cache_status {{
        ""      BYPASS;
        default $upstream_cache_status;
    }}
"""


def _idempotent_location(path: str, queued: bool, cached: bool) -> str:
    return f"""\
        location = {path} {{
{_CACHE_DIRECTIVES if cached else ""}\
            access_by_lua_block {{ require("herald_edge").access({"true" if queued else "false"}) }}
            proxy_pass http://herald_edge_app;
{_FORWARD_HEADERS}
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $herald_edge_connection;
            proxy_read_timeout 3600s;
        }}
"""


def _status_server(config: EdgeConfig) -> str:
    if config.status_listen is None:
        return ""
    return f"""
    # Edge status listener: Prometheus metrics and test/ops endpoints.
    server {{
        listen {_listen(config.status_listen)};
        access_log off;
        location = /edge-metrics {{
            content_by_lua_block {{ require("herald_edge.metrics").render() }}
        }}
        location = /edge-health {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
        location = /edge-keyslot {{
            content_by_lua_block {{ require("herald_edge").keyslot_endpoint() }}
        }}
        location = /edge-slots {{
            content_by_lua_block {{ require("herald_edge").slots_endpoint() }}
        }}
        location / {{
            return 404;
        }}
    }}
"""


def render_nginx_conf(config: EdgeConfig, prefix: Path) -> str:
    prefix = prefix.resolve()
    values = {
        "name": config.name,
        "ndk_module": str(NGINX_MODULES_DIR / "ndk_http_module.so"),
        "lua_module": str(NGINX_MODULES_DIR / "ngx_http_lua_module.so"),
        "user_directive": _user_directive(),
        "worker_processes": str(config.worker_processes),
        "error_log_level": config.error_log_level,
        "worker_connections": str(config.worker_connections),
        "access_log": "access_log logs/access.log;" if config.access_log else "access_log off;",
        "max_body_bytes": str(config.max_body_bytes),
        "resolver": f"    resolver {config.resolver} valid=30s;\n" if config.resolver else "",
        "lua_dir": str(prefix / "lua"),
        "lua_config": str(prefix / "conf" / "herald_edge.lua"),
        "upstream_servers": "\n".join(
            f"        server {_listen(u)} max_fails=0;" for u in config.upstreams
        ),
        "upstream_keepalive": str(config.upstream_keepalive),
        "extra_http": "".join(f"    {line}\n" for line in config.extra_http),
        "listen": _listen(config.listen),
        "upstream_connect_timeout": str(config.upstream_connect_timeout_s),
        "upstream_timeout": str(config.upstream_timeout_s),
        "idempotent_locations": "".join(
            _idempotent_location(p, p in config.queued_paths, p in config.cache_paths)
            for p in config.paths
        ),
        "cache_http": _cache_http(config),
        "internal_prefix": INTERNAL_PREFIX,
        "forward_headers": _FORWARD_HEADERS,
        "status_server": _status_server(config),
    }
    template = TEMPLATE.read_text()

    def fill(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return _PLACEHOLDER.sub(fill, template)


def render(config: EdgeConfig, prefix: Path) -> Path:
    """Write the whole prefix; returns the path of ``conf/nginx.conf``."""
    prefix = Path(prefix).resolve()
    for sub in ("conf", "logs", *(f"temp/{d}" for d in TEMP_DIRS)):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    lua_dir = prefix / "lua"
    if lua_dir.exists():
        shutil.rmtree(lua_dir)
    shutil.copytree(LUA_SOURCE, lua_dir)
    lua_config = prefix / "conf" / "herald_edge.lua"
    lua_config.write_text(render_lua_config(config))
    lua_config.chmod(0o600)  # may hold the Redis password
    conf = prefix / "conf" / "nginx.conf"
    conf.write_text(render_nginx_conf(config, prefix))
    return conf


def nginx_argv(nginx: str, prefix: Path, *extra: str) -> list[str]:
    """The command line that runs (or, with ``-t``, checks) the rendered prefix."""
    prefix = Path(prefix).resolve()
    return [
        nginx,
        "-p", f"{prefix}/",
        "-c", "conf/nginx.conf",
        "-e", "logs/error.log",
        "-g", "daemon off;",
        *extra,
    ]  # fmt: skip

"""``python -m edge``: render, check and run a Herald edge node.

    python -m edge check
    python -m edge render --prefix /srv/herald-edge --upstream 10.0.0.5:8000 \\
        --redis-cluster --redis 10.0.1.1:6379 --redis 10.0.1.2:6379
    python -m edge run --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000 \\
        --redis 127.0.0.1:6379
    python -m edge key --authorization "Bearer eyJ..." 5d8f...   # its Redis key

Defaults come from HERALD_EDGE_LISTEN, HERALD_EDGE_STATUS, HERALD_EDGE_UPSTREAMS,
HERALD_EDGE_REDIS (comma-separated), HERALD_EDGE_REDIS_CLUSTER=1 when set and
HERALD_EDGE_GENERATION_KEY (the read cache's generation: the app's setting of
the same name).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge.config import (
    DAY_MS,
    DEFAULT_GENERATION_KEY,
    DEFAULT_KEY_PREFIX,
    EdgeConfig,
    redis_key,
)
from edge.render import nginx_argv, render
from edge.server import INSTALL_HINT, EdgeServer, find_nginx, missing_components


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {raw!r}")
    return value


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--name", default="edge", help="node name (logs, lock owner)")
    parser.add_argument("--listen", default=env("HERALD_EDGE_LISTEN", "127.0.0.1:8080"))
    parser.add_argument(
        "--status",
        default=env("HERALD_EDGE_STATUS", "127.0.0.1:9145"),
        help="status listener host:port (/edge-metrics, /edge-health); 'none' for none",
    )
    parser.add_argument(
        "--upstream", action="append", default=None, help="app host:port (repeatable)"
    )
    parser.add_argument(
        "--redis", action="append", default=None, help="Redis host:port (repeatable in cluster)"
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        default=env("HERALD_EDGE_REDIS_CLUSTER", "") in ("1", "true", "yes"),
        help="route keys by hash slot (the --redis nodes are seeds)",
    )
    parser.add_argument(
        "--redis-password-env", default=None, metavar="VAR", help="read the password from $VAR"
    )
    parser.add_argument("--path", action="append", default=None, help="idempotent path")
    parser.add_argument(
        "--queued-path", action="append", default=[], help="idempotent path answering 202"
    )
    parser.add_argument("--key-prefix", default=DEFAULT_KEY_PREFIX)
    parser.add_argument("--key-ttl", type=int, default=DAY_MS // 1000, help="seconds (>= 86400)")
    parser.add_argument("--lock-ttl", type=int, default=60, help="seconds")
    parser.add_argument("--redis-connect-timeout-ms", type=int, default=50)
    parser.add_argument("--redis-read-timeout-ms", type=int, default=100)
    parser.add_argument("--redis-backoff-ms", type=int, default=200)
    parser.add_argument("--upstream-timeout", type=int, default=30, help="seconds")
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument(
        "--no-cache", action="store_true", help="no read cache (anonymous GETs go to the app)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=env("HERALD_MAX_BODY_BYTES", str(1024 * 1024)),
        help="the largest request body let through (413 above it; the app's HERALD_MAX_BODY_BYTES)",
    )
    parser.add_argument(
        "--cache-generation-key",
        default=env("HERALD_EDGE_GENERATION_KEY", DEFAULT_GENERATION_KEY),
        help="the Redis key of the read cache's publication generation",
    )


def _config(args: argparse.Namespace) -> EdgeConfig:
    password = None
    if args.redis_password_env:
        password = os.environ.get(args.redis_password_env)
        if password is None:
            raise SystemExit(f"${args.redis_password_env} is not set")
    workers: int | str = int(args.workers) if str(args.workers).isdigit() else args.workers
    paths = tuple(args.path or ["/graphql"])
    return EdgeConfig(
        name=args.name,
        listen=args.listen,
        status_listen=None if args.status == "none" else args.status,
        upstreams=tuple(args.upstream or _env_list("HERALD_EDGE_UPSTREAMS", "127.0.0.1:8000")),
        redis_nodes=tuple(args.redis or _env_list("HERALD_EDGE_REDIS", "127.0.0.1:6379")),
        redis_cluster=args.redis_cluster,
        redis_password=password,
        paths=paths,
        queued_paths=tuple(args.queued_path),
        key_prefix=args.key_prefix,
        key_ttl_ms=args.key_ttl * 1000,
        lock_ttl_ms=args.lock_ttl * 1000,
        redis_connect_timeout_ms=args.redis_connect_timeout_ms,
        redis_read_timeout_ms=args.redis_read_timeout_ms,
        redis_backoff_ms=args.redis_backoff_ms,
        upstream_timeout_s=args.upstream_timeout,
        worker_processes=workers,
        access_log=args.access_log,
        # the read cache is on the GraphQL endpoint's GETs, when it is one of the paths
        cache_paths=tuple(p for p in paths if p == "/graphql" and not args.no_cache),
        cache_generation_key=args.cache_generation_key,
        max_body_bytes=args.max_body_bytes,
    )


def _cmd_check(_args: argparse.Namespace) -> int:
    missing = missing_components()
    if missing:
        print("missing: " + "; ".join(missing), file=sys.stderr)
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    print(f"ok: {find_nginx()} with the Lua module and nginx.redis")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    config = _config(args)
    conf = render(config, Path(args.prefix))
    print(f"wrote {conf}")
    print(
        " ".join(
            f"'{a}'" if " " in a else a
            for a in nginx_argv(find_nginx() or "nginx", conf.parent.parent)
        )
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    server = EdgeServer(config, Path(args.prefix) if args.prefix else None)
    server.start()
    print(f"edge {config.name}: {server.base_url} -> {', '.join(config.upstreams)}", flush=True)
    if config.status_listen:
        print(f"metrics: {server.metrics_url}", flush=True)
    print(f"prefix: {server.prefix} (error log logs/error.log)", flush=True)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stopping and server.is_running:
            time.sleep(0.2)
    finally:
        code = 0 if server.is_running else 1
        server.close()
    return code


def _cmd_key(args: argparse.Namespace) -> int:
    print(redis_key(args.key, args.authorization, args.key_prefix))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="are nginx, its Lua module and nginx.redis here?")
    check.set_defaults(func=_cmd_check)

    render_cmd = commands.add_parser("render", help="write an nginx prefix")
    render_cmd.add_argument("--prefix", required=True)
    _add_config_options(render_cmd)
    render_cmd.set_defaults(func=_cmd_render)

    run = commands.add_parser("run", help="render and run nginx in the foreground")
    run.add_argument("--prefix", default=None, help="default: a temp folder")
    _add_config_options(run)
    run.set_defaults(func=_cmd_run)

    key = commands.add_parser("key", help="the Redis key of an Idempotency-Key")
    key.add_argument("key")
    key.add_argument("--authorization", default=None, help="the caller's Authorization header")
    key.add_argument("--key-prefix", default=DEFAULT_KEY_PREFIX)
    key.set_defaults(func=_cmd_key)

    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ValueError as exc:
        parser.error(str(exc))
    return code


if __name__ == "__main__":
    sys.exit(main())

"""`herald …` — run Herald, mint dev tokens, export the schema."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_DATA_DIR = Path(".herald")


def _cmd_dev(args: argparse.Namespace) -> int:
    from cli.dev import run_dev

    return run_dev(
        port=args.port,
        host=args.host,
        data_dir=Path(args.data_dir),
        broker=args.broker,
        edge=args.edge,
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from app import main

    main()
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from projections.rebuild import run

    run(args.projection, switch=not args.no_switch)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    """Projectors (and, with --relay, the outbox relay) without the HTTP API."""
    import asyncio
    import contextlib
    import logging

    from observability.tracing import configure_tracing
    from services import Services
    from settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def main() -> None:
        settings = Settings.from_env().with_overrides(run_relay=args.relay, run_projectors=True)
        configure_tracing(settings)  # before Services: PyMongo traces clients made afterwards
        services = Services(settings)
        await services.start()
        try:
            await asyncio.gather(*services.tasks.values())
        finally:
            await services.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from adapters.auth.dev_issuer import DevIssuer

    issuer = DevIssuer(Path(args.data_dir))
    token = issuer.mint(
        args.sub,
        roles=args.roles,
        accounts=args.accounts,
        scopes=args.scope,
        ttl_seconds=args.ttl,
        audience=args.audience,
    )
    print(token)
    return 0


def _cmd_export_schema(args: argparse.Namespace) -> int:
    from queries.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_allowlist(args: argparse.Namespace) -> int:
    from queries.allowlist import main as allowlist

    return allowlist([*args.files, "--output", args.output])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser(
        "dev", help="run the whole system on the embedded default (broker, store, API, projectors)"
    )
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    dev.add_argument(
        "--broker",
        choices=("tansu", "kafka"),
        default="tansu",
        help="tansu (embedded, memory-only) or kafka (Apache Kafka 4, needs Java 17)",
    )
    dev.add_argument(
        "--edge",
        action="store_true",
        help="put the nginx+Lua+Redis idempotency edge on --port, in front of the API",
    )
    dev.set_defaults(func=_cmd_dev)

    serve = sub.add_parser(
        "serve", help="run the API (and relay/projectors) from HERALD_* variables"
    )
    serve.set_defaults(func=_cmd_serve)

    rebuild = sub.add_parser(
        "rebuild", help="replay the log into fresh collections, then switch readers over"
    )
    rebuild.add_argument("projection", choices=("cards", "notices"))
    rebuild.add_argument(
        "--no-switch", action="store_true", help="leave the rebuilt collection beside the live one"
    )
    rebuild.set_defaults(func=_cmd_rebuild)

    worker = sub.add_parser("worker", help="run the projectors without the HTTP API")
    worker.add_argument("--relay", action="store_true", help="also run the outbox relay")
    worker.set_defaults(func=_cmd_worker)

    token = sub.add_parser("token", help="print a token signed by the dev issuer of a data folder")
    token.add_argument("--sub", required=True)
    token.add_argument("--roles", nargs="*", default=[])
    token.add_argument("--accounts", nargs="*", default=[])
    token.add_argument("--scope", nargs="*", default=[])
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds; negative gives an expired token"
    )
    token.add_argument("--audience", default=None)
    token.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    token.set_defaults(func=_cmd_token)

    from cli.deliveries import add_arguments as dlq_arguments
    from cli.deliveries import run as dlq_run

    dlq = sub.add_parser("dlq", help="list or replay dead-lettered deliveries")
    dlq_arguments(dlq)
    dlq.set_defaults(func=dlq_run)

    export = sub.add_parser("export-schema", help="print the GraphQL SDL (schema.graphql)")
    export.add_argument("--output", "-o", default="-")
    export.set_defaults(func=_cmd_export_schema)
    allowlist = sub.add_parser(
        "allowlist",
        help="write the persisted-query allowlist (sha256 -> document) of the contract's "
        "operations, for HERALD_PERSISTED_QUERIES",
    )
    allowlist.add_argument(
        "files", nargs="*", help="operation files or folders (default: contract)"
    )
    allowlist.add_argument("--output", "-o", default="-")
    allowlist.set_defaults(func=_cmd_allowlist)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())

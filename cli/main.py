"""`herald …` — run Herald, mint dev tokens, export the schema.

Exit codes: 0 done; 2 bad arguments; 69 the store or the broker is
unreachable at start-up; 78 a HERALD_* variable is malformed (see
cli/preflight.py). Start-up failures print one line; --debug adds the
traceback and debug logging.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from cli.bench import register as register_bench
from cli.dlq import register as register_dlq
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, SCOPE_NOTICES_READ
from settings import Settings, SettingsError

DEFAULT_DATA_DIR = Path(".herald")
TRACES_FILE = "traces.jsonl"  # in the data dir, unless `--traces FILE` names one
ROLES = (ROLE_OPERATOR, ROLE_APPROVER)


def _cmd_dev(args: argparse.Namespace) -> int:
    from cli.dev import run_dev

    return run_dev(
        port=args.port,
        host=args.host,
        data_dir=Path(args.data_dir),
        broker=args.broker,
        edge=args.edge,
        traces=None if args.traces is None else Path(args.traces or _traces_file(args)),
    )


def _traces_file(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) / TRACES_FILE


def _cmd_trace(args: argparse.Namespace) -> int:
    """One trace of a `herald dev --traces` file as an indented tree."""
    from observability import trace_file

    path = Path(args.file) if args.file else _traces_file(args)
    if not path.exists():
        print(f"herald trace: no {path} (run `herald dev --traces {path}`)", file=sys.stderr)
        return 66  # EX_NOINPUT
    spans = trace_file.read(path)
    found = trace_file.matching_traces(spans, args.id)
    if not found:
        print(f"herald trace: no trace in {path} has {args.id!r}", file=sys.stderr)
        return 1
    for index, trace_id in enumerate(found):
        if index:
            print()
        for line in trace_file.render(trace_file.tree(spans, trace_id), trace_id):
            print(line)
    return 0


def _preflight(*, need_broker: bool) -> Settings:
    """The environment's settings, once the store (and broker) answered."""
    from cli.preflight import check_reachable

    settings = Settings.from_env()
    for warning in check_reachable(settings, need_broker=need_broker):
        print(f"herald: {warning}", file=sys.stderr)
    return settings


def _cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(port=args.port, host=args.host, data_dir=Path(args.data_dir))


def _cmd_serve(args: argparse.Namespace) -> int:
    _preflight(need_broker=False)
    from app import main

    main()
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    """Each HERALD_* variable with the value in force, secrets masked."""
    for setting in Settings.from_env().effective():
        print(f"{setting.env}={setting.value}  # {setting.doc}")
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    checked = _preflight(need_broker=True)
    from cli.rebuild import run
    from observability.logs import configure_logging

    configure_logging(checked.log_format or "json", level=_log_level(args))

    run(args.projection, switch=not args.no_switch)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    """Projectors (and, with --relay, the outbox relay) without the HTTP API."""
    import asyncio
    import contextlib

    from cli.preflight import StartupFailure
    from observability.logs import configure_logging
    from observability.probes import Probes, ProbeServer
    from observability.tracing import configure_tracing
    from services import Services

    checked = _preflight(need_broker=True)
    configure_logging(checked.log_format or "json", level=_log_level(args))

    async def main() -> None:
        settings = checked.with_overrides(run_relay=args.relay, run_projectors=True)
        configure_tracing(settings)  # before Services: PyMongo traces clients made afterwards
        services = Services(settings)
        port = settings.worker_metrics_port if args.metrics_port is None else args.metrics_port
        probes = ProbeServer(Probes(services.ready, lambda: services.progress), settings.host, port)
        if port:  # listening first: a taken port stops the worker before it joins groups
            try:
                await probes.start()
            except OSError as exc:
                raise StartupFailure(
                    f"cannot serve /metrics on {settings.host}:{port} ({exc}); choose "
                    "another with --metrics-port or HERALD_WORKER_METRICS_PORT (0: none)"
                ) from exc
        await services.start()
        try:
            await asyncio.gather(*services.tasks.values())
        finally:
            await services.stop()
            await probes.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _log_level(args: argparse.Namespace) -> int:
    import logging

    return logging.DEBUG if getattr(args, "debug", False) else logging.INFO


def _cmd_token(args: argparse.Namespace) -> int:
    from adapters.auth.dev_issuer import DevIssuer

    unknown = sorted(set(args.roles) - set(ROLES))
    if unknown:
        args.parser.error(
            f"unknown role(s) {', '.join(unknown)}; valid roles: {', '.join(ROLES)} "
            "(a depositor has no role: --accounts and --scope notices:read)"
        )
    issuer = DevIssuer(Path(args.data_dir))
    if not issuer.key_path.exists():
        # A typo in --data-dir would otherwise mint, silently, a token that the
        # running Herald (which trusts its own folder's key) refuses as 401.
        print(
            f"herald token: no signing key in {args.data_dir}; created a new one at "
            f"{issuer.key_path}: only a Herald started with --data-dir {args.data_dir} "
            "accepts this token",
            file=sys.stderr,
        )
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help shows its default (unless it has none); descriptions keep
    their lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str | None = None,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=summary,
        description=description or summary,
        formatter_class=_HelpFormatter,
        parents=list(parents),
    )
    parser.set_defaults(parser=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald", description=__doc__, formatter_class=_HelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug",
        action="store_true",
        help="debug logging, and the traceback behind a start-up failure",
    )
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help="the dev folder: store data, logs and the dev issuer's signing key",
    )

    dev = _command(
        sub,
        "dev",
        "run the whole system on the embedded default (broker, store, API, projectors)",
        "Start SecantusDB, a broker, the API, the outbox relay and the projectors in one "
        "process; print the GraphQL URL and ready-to-paste token commands; Ctrl-C stops all.",
        parents=[data_dir],
    )
    dev.add_argument("--port", type=int, default=8000, help="the HTTP port of the API")
    dev.add_argument("--host", default="127.0.0.1", help="the interface the API listens on")
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
    dev.add_argument(
        "--traces",
        nargs="?",
        const="",
        metavar="FILE",
        help=f"write every span as a JSON line to FILE (default <data-dir>/{TRACES_FILE}); "
        "`herald trace ID` prints one trace",
    )
    dev.set_defaults(func=_cmd_dev)

    trace_cmd = _command(
        sub,
        "trace",
        "print one trace of a `herald dev --traces` file as a tree with durations",
        "ID is a trace id, or a value a span carries (a correlation id, an action id, a "
        "notice id): every trace holding it is printed, oldest first.",
        parents=[data_dir],
    )
    trace_cmd.add_argument("id", metavar="ID", help="trace id, correlation id, action id …")
    trace_cmd.add_argument("--file", help=f"the spans file (default <data-dir>/{TRACES_FILE})")
    trace_cmd.set_defaults(func=_cmd_trace)

    demo = _command(
        sub,
        "demo",
        "walk through the system against a running `herald dev`",
        "Against a running `herald dev` (same --port and --data-dir): announce a dividend, "
        "approve it as a second person, record three depositors' positions, then print the "
        "public card and one depositor's notice.",
        parents=[data_dir],
    )
    demo.add_argument("--port", type=int, default=8000, help="the port `herald dev` serves on")
    demo.add_argument("--host", default="127.0.0.1", help="the host `herald dev` serves on")
    demo.set_defaults(func=_cmd_demo)

    serve = _command(
        sub,
        "serve",
        "run the API (and relay/projectors) from HERALD_* variables",
        "Run the API, with the outbox relay and the projectors unless HERALD_RUN_RELAY / "
        "HERALD_RUN_PROJECTORS say false, against HERALD_MONGO_URI and "
        "HERALD_KAFKA_BOOTSTRAP (see settings.py). Exits 69 when the store is unreachable.",
        parents=[debug],
    )
    serve.set_defaults(func=_cmd_serve)

    rebuild = _command(
        sub,
        "rebuild",
        "replay the log into fresh collections, then switch readers over",
        parents=[debug],
    )
    rebuild.add_argument(
        "projection", choices=("cards", "notices"), help="the read model to rebuild"
    )
    rebuild.add_argument(
        "--no-switch", action="store_true", help="leave the rebuilt collection beside the live one"
    )
    rebuild.set_defaults(func=_cmd_rebuild)

    worker = _command(
        sub,
        "worker",
        "run the projectors without the HTTP API",
        "Run the projectors (each a member of its consumer group) without HTTP, against "
        "the HERALD_* variables; exits 69 when the store or the broker is unreachable.",
        parents=[debug],
    )
    worker.add_argument("--relay", action="store_true", help="also run the outbox relay")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics, /healthz and /readyz on this port of HERALD_HOST (0: none; "
        "default: HERALD_WORKER_METRICS_PORT, 9464)",
    )
    worker.set_defaults(func=_cmd_worker)

    token = _command(
        sub,
        "token",
        "print a token signed by the dev issuer of a data folder",
        "Print a JWT signed by the dev issuer of --data-dir: use the same folder as "
        f"`herald dev`. Roles: {', '.join(ROLES)}. A depositor has no role: "
        f"--accounts ACC... --scope {SCOPE_NOTICES_READ}.",
        parents=[data_dir],
    )
    token.add_argument("--sub", required=True, help="the subject (who the caller is)")
    token.add_argument(
        "--roles", nargs="*", default=[], metavar="ROLE", help=f"any of: {', '.join(ROLES)}"
    )
    token.add_argument(
        "--accounts", nargs="*", default=[], help="the depositor accounts whose notices it reads"
    )
    token.add_argument("--scope", nargs="*", default=[], help=f"scopes, e.g. {SCOPE_NOTICES_READ}")
    token.add_argument(
        "--ttl",
        type=int,
        default=3600,
        help="seconds; below minus HERALD_JWT_LEEWAY_SECONDS (30) gives an expired token",
    )
    token.add_argument(
        "--audience", default=None, help="the aud claim (default: the dev issuer's audience)"
    )
    token.set_defaults(func=_cmd_token)

    config = _command(
        sub,
        "config",
        "print the effective settings: each HERALD_* variable with its value (secrets "
        "masked) and what it sets",
    )
    config.set_defaults(func=_cmd_config)
    export = _command(sub, "export-schema", "print the GraphQL SDL (schema.graphql)")
    export.add_argument("--output", "-o", default="-", help="where to write it (- = stdout)")
    export.set_defaults(func=_cmd_export_schema)
    allowlist = _command(
        sub,
        "allowlist",
        "write the persisted-query allowlist (sha256 -> document) of the contract's "
        "operations, for HERALD_PERSISTED_QUERIES",
    )
    allowlist.add_argument(
        "files",
        nargs="*",
        help="operation files or folders (default: the repository's contract/operations)",
    )
    allowlist.add_argument("--output", "-o", default="-", help="where to write it (- = stdout)")
    allowlist.set_defaults(func=_cmd_allowlist)
    register_dlq(sub, _HelpFormatter)
    register_bench(sub, _HelpFormatter)
    return parser


EXIT_IO_ERROR = 74  # sysexits EX_IOERR: a file the user named could not be read or written


def main(argv: Sequence[str] | None = None) -> int:
    from cli.preflight import EXIT_CONFIG, StartupFailure

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the subcommand's own usage, not the top level's
        (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    debug = bool(getattr(args, "debug", False))
    if debug:
        from observability.logs import configure_logging

        configure_logging("console", level=_log_level(args))
    try:
        result: int = args.func(args)
    except (StartupFailure, SettingsError) as exc:
        if debug:
            traceback.print_exc()
        code = exc.exit_code if isinstance(exc, StartupFailure) else EXIT_CONFIG
        print(f"herald {args.command}: {exc}", file=sys.stderr)
        return code
    except OSError as exc:
        if exc.filename is None:  # not a file the user named: a bug, with its traceback
            raise
        if debug:
            traceback.print_exc()
        print(f"herald {args.command}: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_IO_ERROR
    return result


if __name__ == "__main__":
    raise SystemExit(main())

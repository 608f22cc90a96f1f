"""`herald bench`: every benchmark of `bench/` in one run (see bench/suite.py).

Prints the machine's cores, the store and the broker, then one table of
figures, each beside the baseline measured in the same run and the ratio;
writes the same as JSON to `--output`. Exit status 0 when every chosen
benchmark ran, 1 when one failed or overran its bound (the others still ran).

The benchmarks live in the repository's `bench/` (beside `tests/`, whose
helpers some use), not in the installed package: `herald bench` runs from a
clone (the README's setup), and says so otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from cli.preflight import EXIT_CONFIG

REPO = Path(__file__).resolve().parents[1]


def _suite_importable() -> bool:
    if (REPO / "bench" / "suite.py").is_file():
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))  # spawned load processes inherit it
        return True
    return False


def _cmd_bench(args: argparse.Namespace) -> int:
    if not _suite_importable():
        print(
            f"herald bench: no bench/ beside {REPO}: run it from a clone of the repository",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from bench.suite import run_suite, select

    try:
        select(args.only)
    except ValueError as exc:
        args.parser.error(str(exc))

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = asyncio.run(
        run_suite(args.only, quick=args.quick, broker=args.broker, progress=progress)
    )
    print("\n".join(report.lines()))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {output}", file=sys.stderr)
    return 0 if all(o.error is None for o in report.outcomes) else 1


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
) -> None:
    """Add `herald bench` to the `herald` parser."""
    from_names = "commands, freshness, reads, paging, fanout, scaleout, edge, deliveries, restart"
    bench = sub.add_parser(
        "bench",
        help="run the benchmarks; print each figure beside its same-run baseline",
        description=__doc__,
        formatter_class=formatter_class,
    )
    bench.add_argument(
        "--quick", action="store_true", help="smoke sizes: the whole run in under two minutes"
    )
    bench.add_argument(
        "--only", nargs="+", metavar="NAME", default=None, help=f"only these: {from_names}"
    )
    bench.add_argument(
        "--broker",
        choices=("kafka", "tansu"),
        default="kafka",
        help="the broker of the shared stack and the deliveries bench",
    )
    bench.add_argument(
        "--output", "-o", default=None, help="write the result as JSON here (see bench/suite.py)"
    )
    bench.set_defaults(func=_cmd_bench, parser=bench)

"""The website's card list through the edge's read cache (issue 16 item 7),
against the raw endpoint and against Herald's own in-process cache.

On the bench stack (one Herald in this process, its public cache on, as
deployed) with `--cards` published dividends, starts redis-server and one
nginx edge (`--workers` processes) in front of Herald's port, and serves the
raw Starlette + PyMongo endpoint of `bench.card_list_read` beside it. Then,
with one client for every variant — the load process running a keep-alive
HTTP/1.1 pool on uvloop (tests/edge/httpclient.py; httpx would be the
bottleneck), `--concurrency` connections, GET — for `--seconds` per variant,
interleaved over `--rounds` rounds:

- **raw**: `GET /cards` on the raw endpoint (the floor of this read);
- **app cached**: `GET /graphql?query=…` of the website's `WebsiteCards`
  straight to Herald (answered from its in-process cache);
- **edge cached**: the same GET through the edge (its body checked equal to
  Herald's; the answers counted by `X-Cache`).

    .venv/bin/python -m bench.edge_cache [--cards 60] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from bench.card_list_read import PAGE, WEBSITE, publish, raw_app, serve
from bench.figures import Figure, Result, print_result
from bench.load import LoadProcess, run_fast
from bench.stack import BenchStack, add_stack_arguments, bench_stack, edge_in_front
from tests.edge.httpclient import RawHTTPPool

WARM_UP = 50  # requests before each measured pass, not counted


@dataclass(frozen=True)
class GetLoad:
    """GETs of `path` on `port` from `connections` keep-alive connections for
    `seconds`; `count_cache`: count the answers by their X-Cache."""

    port: int
    path: str
    connections: int
    seconds: float
    count_cache: bool = False


@dataclass(frozen=True)
class GetRate:
    rate: float  # answers per second
    answers: int
    cache: dict[str, int]  # answers by X-Cache (HIT; REVALIDATED, UPDATING past max-age)


async def _get_load(load: GetLoad) -> GetRate:
    cache: Counter[str] = Counter()
    answers = 0
    async with RawHTTPPool("127.0.0.1", load.port, connections=load.connections) as pool:

        async def client(deadline: float) -> None:
            nonlocal answers
            while time.perf_counter() < deadline:
                response = await pool.request("GET", load.path)
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {response.body[:300]!r}")
                answers += 1
                if load.count_cache:
                    cache[response.headers.get("x-cache", "none")] += 1

        for _ in range(WARM_UP):
            await pool.request("GET", load.path)
        started = time.perf_counter()
        await asyncio.gather(*(client(started + load.seconds) for _ in range(load.connections)))
        elapsed = time.perf_counter() - started
    return GetRate(answers / elapsed, answers, dict(cache))


def get_load(load: GetLoad) -> GetRate:
    """Run `load` (in the load process)."""
    return run_fast(_get_load(load))


def website_cards_path() -> str:
    """The website's card list (first page) as a GET, as a browser sends it."""
    query = {
        "query": WEBSITE.read_text(),
        "operationName": "WebsiteCards",
        "variables": json.dumps({"first": PAGE}, separators=(",", ":")),
    }
    return "/graphql?" + urlencode(query)


async def _check(raw_port: int, app_port: int, edge_port: int, path: str) -> int:
    """The three answer the same cards; the edge's second answer is a HIT
    equal to Herald's. Returns the body's size in bytes."""
    async with httpx.AsyncClient(timeout=30) as http:
        app = await http.get(f"http://127.0.0.1:{app_port}{path}")
        assert app.status_code == 200 and not app.json().get("errors"), app.text[:300]
        raw = await http.get(f"http://127.0.0.1:{raw_port}/cards")
        assert raw.json() == app.json(), "raw endpoint and GraphQL disagree"
        await http.get(f"http://127.0.0.1:{edge_port}{path}")
        edge = await http.get(f"http://127.0.0.1:{edge_port}{path}")
        assert edge.headers.get("x-cache") == "HIT", edge.headers
        assert edge.content == app.content, "the edge answers another body than Herald"
    return len(app.content)


async def measure(
    stack: BenchStack,
    load_process: LoadProcess,
    *,
    cards: int = 60,
    seconds: float = 5.0,
    rounds: int = 3,
    concurrency: int = 8,
    workers: int = 2,
    publish_cards: bool = True,
) -> Result:
    """The three variants (module docstring); `publish_cards=False` when the
    stack already holds published cards (`herald bench`'s reads did it)."""
    result = Result(
        "edge-cache",
        sizes={
            "cards": cards,
            "seconds": seconds,
            "rounds": rounds,
            "concurrency": concurrency,
            "nginx_workers": workers,
        },
    )
    if publish_cards:
        await publish(stack.herald.services, cards)
    path = website_cards_path()
    raw = await serve(raw_app(stack.herald.services))
    try:
        with edge_in_front(stack.herald, name="bench-cache", workers=workers) as edge:
            raw_port = int(raw.url.rsplit(":", 1)[1])
            edge_port = edge.config.listen_address[1]
            body_bytes = await _check(raw_port, stack.settings.port, edge_port, path)
            variants = {
                "raw": GetLoad(raw_port, "/cards", concurrency, seconds),
                "app": GetLoad(stack.settings.port, path, concurrency, seconds),
                "edge": GetLoad(edge_port, path, concurrency, seconds, count_cache=True),
            }
            rates: dict[str, list[GetRate]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, load in variants.items():
                    rates[name].append(await load_process.run(get_load, load))
    finally:
        raw.server.should_exit = True
        await raw.task

    median = {name: statistics.median(r.rate for r in runs) for name, runs in rates.items()}
    clients = f"{concurrency} clients, GET"
    result.add(
        Figure(
            f"anonymous card list, edge cache ({clients})",
            median["edge"],
            "req/s",
            f"raw Starlette + PyMongo endpoint ({clients})",
            median["raw"],
            "≥ 20×",
        ),
        Figure(
            f"anonymous card list, edge cache vs the app's own ({clients})",
            median["edge"],
            "req/s",
            f"graphql cached in process ({clients})",
            median["app"],
        ),
    )
    by_status: Counter[str] = Counter()
    for run in rates["edge"]:
        by_status.update(run.cache)
    result.notes.append(
        f"first {PAGE} of {cards}+ published cards ({body_bytes} bytes of JSON); "
        f"{rounds} rounds × {seconds:g} s per variant; keep-alive HTTP/1.1 pool on uvloop in "
        f"the load process; edge answers by X-Cache: {dict(by_status)} (past the app's "
        f"max-age one request revalidates, REVALIDATED, while others get UPDATING); "
        f"app cached / raw with this client: {median['app'] / median['raw']:.2f}×"
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=60, help="published cards in the store")
    parser.add_argument("--seconds", type=float, default=5.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="nginx worker processes")
    add_stack_arguments(parser, broker="tansu")  # the broker only carries the seeding
    args = parser.parse_args()
    async with (
        bench_stack("edge-cache", broker=args.broker, keep=args.keep) as stack,
        LoadProcess() as load_process,
    ):
        result = await measure(
            stack,
            load_process,
            cards=args.cards,
            seconds=args.seconds,
            rounds=args.rounds,
            concurrency=args.concurrency,
            workers=args.workers,
        )
    print_result(result, store="SecantusDB", broker=args.broker)


if __name__ == "__main__":
    asyncio.run(main())

"""The website's card list (anonymous, first 20): what GraphQL costs over a
hand-written endpoint, with and without the public read cache.

Starts the bench stack (SecantusDB, Tansu by default — the broker only
carries the seeding — and one Herald in this process), announces and
approves `--cards` dividends through the handlers and waits until the card
projector has them. Then serves, from this process and over the same
Services (one store client), each on a port of its own:

- **raw**: a plain Starlette endpoint doing the same two store calls as the
  resolver (`cards.page` + `cards.count`) and encoding the same JSON by hand
  — the floor for this read; its body is checked equal to GraphQL's;
- **graphql uncached**: Herald's app with `public_cache=False` (every request
  is parsed-from-cache, validated-from-cache, executed, and hits the store);
- **graphql cached**: Herald's app as deployed (answered from memory);
- **graphql cached, 304**: the same with `If-None-Match` (revalidation).

The load comes from a child process (so the client's work does not share
the server's core), over keep-alive HTTP/1.1: a sequential pass for latency
and a concurrent pass for throughput, each variant interleaved over
`--rounds` rounds so drift on a shared machine hits them alike. Latency is
shown as the client saw it and as the server spent it (an ASGI timer around
each app: without the client's own overhead).

    .venv/bin/python -m bench.card_list_read [--cards 60] [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app import create_app
from bench.figures import Figure, Result, print_result
from bench.load import LoadProcess
from bench.stack import APPROVER, OPERATOR, BenchStack, add_stack_arguments, bench_stack, pct
from devstack.process import free_port
from domain.corporate_action import CorporateAction
from domain.identifiers import currency_minor_unit
from domain.money import format_amount
from domain.ports import CardQuery
from domain.terms_payload import terms_to_payload
from queries.allowlist import DEFAULT_OPERATIONS
from queries.paging import encode_cursor
from queries.schema import CARD_CURSOR
from services import Services

PAGE = 20
WEBSITE = DEFAULT_OPERATIONS / "website.graphql"  # the contract: what the browser sends


# --- the raw endpoint ---------------------------------------------------------------


def _money(data: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not data:
        return None
    currency = str(data["currency"])
    minor = currency_minor_unit(currency)
    amount = Decimal(str(data["amount"]))
    return {
        "amount": str(amount) if minor is None else format_amount(amount, minor),
        "currency": currency,
    }


def _card(state: CorporateAction) -> dict[str, Any]:
    shown = state.published
    assert shown is not None  # the query asked for published cards only
    # the JSON shape the card query answers with (values are JSON-compatible)
    terms = cast(dict[str, Any], terms_to_payload(shown.terms))
    ratio = terms.get("ratio")
    return {
        "id": state.id,
        "reference": terms["reference"],
        "eventType": terms["eventType"],
        "mandatoryVoluntary": terms["mandatoryVoluntary"],
        "status": state.status.value,
        "version": shown.number,
        "security": {"isin": terms["isin"], "name": terms.get("securityName")},
        "announcementDate": terms["announcementDate"],
        "exDate": terms.get("exDate"),
        "recordDate": terms["recordDate"],
        "paymentDate": terms.get("paymentDate"),
        "responseDeadline": terms.get("responseDeadline"),
        "grossRate": _money(terms.get("grossRate")),
        "ratio": None
        if not ratio
        else {"numerator": ratio["numerator"], "denominator": ratio["denominator"]},
        "options": [
            {"number": o["number"], "kind": o["kind"], "isDefault": o["isDefault"]}
            for o in terms.get("options") or []
        ],
        "publishedAt": None if state.published_at is None else state.published_at.isoformat(),
    }


def raw_app(services: Services) -> Starlette:
    """One route doing what the resolver does for the public list, by hand."""

    async def cards(request: Request) -> Response:
        query = CardQuery(public_only=True)
        states, has_next = await services.cards.page(query, PAGE, None)
        total = await services.cards.count(query)
        edges = [{"cursor": encode_cursor(CARD_CURSOR, s.id), "node": _card(s)} for s in states]
        body = {
            "data": {
                "corporateActions": {
                    "totalCount": total,
                    "pageInfo": {
                        "hasNextPage": has_next,
                        "endCursor": edges[-1]["cursor"] if edges else None,
                    },
                    "edges": edges,
                }
            }
        }
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")

    return Starlette(routes=[Route("/cards", cards)])


class ServerTimer:
    """ASGI wrapper: milliseconds from a request reaching the app to its last
    byte handed to the server — the server's own share, without the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.samples: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.samples.append((time.perf_counter() - started) * 1000)


@dataclass
class Served:
    timer: ServerTimer
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]


async def serve(app: ASGIApp) -> Served:
    """Serve `app` on a loopback port of its own (its services already started)."""
    port = free_port()
    timer = ServerTimer(app)
    server = uvicorn.Server(
        uvicorn.Config(timer, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return Served(timer, f"http://127.0.0.1:{port}", server, task)


# --- the load (in a child process) --------------------------------------------------

WARM_UP = 20  # requests before each measured pass, not counted


@dataclass(frozen=True)
class Variant:
    name: str
    served: str  # which server answers it
    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    expect_status: int = 200


async def _load(
    variant: Variant, url: str, requests: int, concurrency: int
) -> tuple[list[float], float]:
    headers = {"content-type": "application/json", **variant.headers}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        latencies: list[float] = []

        async def client(count: int) -> None:
            for _ in range(count):
                started = time.perf_counter()
                response = await http.request(
                    variant.method, variant.path, content=variant.body, headers=headers
                )
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == variant.expect_status, (
                    variant.name,
                    response.status_code,
                    response.text[:300],
                )

        await client(WARM_UP)
        latencies.clear()
        share, extra = divmod(requests, concurrency)
        started = time.perf_counter()
        await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))
        return latencies, requests / (time.perf_counter() - started)


def load(variant: Variant, url: str, requests: int, concurrency: int) -> tuple[list[float], float]:
    """`requests` requests from `concurrency` clients: latencies (ms) and req/s."""
    return asyncio.run(_load(variant, url, requests, concurrency))


# --- the run --------------------------------------------------------------------------


def terms(n: int) -> dict[str, Any]:
    record_date = date(2027, 1, 15) + timedelta(days=n)
    return {
        "reference": f"BENCH-CARDS-{uuid.uuid4().hex[:10]}-{n}",
        "eventType": "DVCA",
        "mandatoryVoluntary": "MAND",
        "isin": "RU0009029540",
        "securityName": "Sberbank ord.",
        "announcementDate": (record_date - timedelta(days=20)).isoformat(),
        "exDate": (record_date - timedelta(days=1)).isoformat(),
        "recordDate": record_date.isoformat(),
        "paymentDate": (record_date + timedelta(days=10)).isoformat(),
        "grossRate": {"amount": "33.30", "currency": "RUB"},
    }


async def publish(services: Services, cards: int) -> None:
    """Announce and approve `cards` dividends; return once all are projected."""
    print(f"publishing {cards} cards …", flush=True)
    before = await services.cards.count(CardQuery(public_only=True))
    for n in range(cards):
        announced = await services.handlers.announce(terms(n), OPERATOR)
        await services.handlers.approve(announced.action.id, 1, APPROVER)
    deadline = time.monotonic() + 60 + cards
    while (public := await services.cards.count(CardQuery(public_only=True))) < before + cards:
        assert time.monotonic() < deadline, f"only {public - before} of {cards} cards projected"
        await asyncio.sleep(0.1)


@dataclass
class Figures:
    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)


async def measure(
    stack: BenchStack,
    load_process: LoadProcess,
    *,
    cards: int = 60,
    requests: int = 400,
    concurrency: int = 8,
    rounds: int = 3,
) -> Result:
    """The four variants (module docstring) against the raw endpoint; the
    load runs in `load_process`, `requests` per variant, pass and round."""
    result = Result(
        "reads",
        sizes={"cards": cards, "requests": requests, "concurrency": concurrency, "rounds": rounds},
    )
    services = stack.herald.services
    await publish(services, cards)

    servers = {
        "raw": await serve(raw_app(services)),
        "uncached": await serve(
            create_app(stack.settings.with_overrides(public_cache=False), services)
        ),
        "cached": await serve(stack.herald.app),  # Herald's app as deployed
    }
    try:
        variants, body_bytes = await _variants(servers)
        sequential = {v.name: Figures() for v in variants}
        concurrent = {v.name: Figures() for v in variants}
        for _ in range(rounds):
            for variant in variants:
                served = servers[variant.served]
                for figures, clients in (
                    (sequential[variant.name], 1),
                    (concurrent[variant.name], concurrency),
                ):
                    served.timer.samples.clear()
                    latencies, rate = await load_process.run(
                        load, variant, served.url, requests, clients
                    )
                    figures.client_ms += latencies
                    figures.server_ms += served.timer.samples[WARM_UP:]
                    figures.rates.append(rate)
    finally:
        for served in servers.values():
            served.server.should_exit = True
        await asyncio.gather(*(served.task for served in servers.values()))

    raw = variants[0].name
    floor_rate = statistics.median(concurrent[raw].rates)
    goals = {"graphql cached": "≥ 5×"}
    for variant in variants[1:]:
        result.add(
            Figure(
                f"anonymous card list, {variant.name} ({concurrency} clients)",
                statistics.median(concurrent[variant.name].rates),
                "req/s",
                f"raw Starlette + PyMongo endpoint ({concurrency} clients)",
                floor_rate,
                goals.get(variant.name),
            )
        )
    result.notes.extend(
        report(cards, requests, rounds, concurrency, variants, sequential, concurrent, body_bytes)
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=60, help="published cards in the store")
    parser.add_argument("--requests", type=int, default=400, help="per variant, per pass")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    add_stack_arguments(parser, broker="tansu")  # the broker only carries the seeding
    args = parser.parse_args()
    async with (
        bench_stack("cards", broker=args.broker, keep=args.keep) as stack,
        LoadProcess() as load_process,
    ):
        result = await measure(
            stack,
            load_process,
            cards=args.cards,
            requests=args.requests,
            concurrency=args.concurrency,
            rounds=args.rounds,
        )
    print_result(result, store="SecantusDB", broker=args.broker)


async def _variants(servers: Mapping[str, Served]) -> tuple[list[Variant], int]:
    """The four variants, after checking the raw endpoint answers what GraphQL does."""
    request = {"query": WEBSITE.read_text(), "operationName": "WebsiteCards"}
    body = json.dumps({**request, "variables": {"first": PAGE}}).encode()
    async with httpx.AsyncClient(timeout=30) as http:
        graphql = await http.post(
            f"{servers['cached'].url}/graphql",
            content=body,
            headers={"content-type": "application/json"},
        )
        raw = await http.get(f"{servers['raw'].url}/cards")
    assert graphql.status_code == 200 and not graphql.json().get("errors"), graphql.text
    # the same work: the raw endpoint's answer is GraphQL's, field for field
    assert raw.json() == graphql.json(), "raw endpoint and GraphQL disagree"
    revalidate = {"if-none-match": graphql.headers["etag"]}
    return [
        Variant("raw Starlette endpoint", "raw", "GET", "/cards"),
        Variant("graphql uncached", "uncached", "POST", "/graphql", body),
        Variant("graphql cached", "cached", "POST", "/graphql", body),
        Variant("graphql cached, 304", "cached", "POST", "/graphql", body, revalidate, 304),
    ], len(graphql.content)


def report(
    cards: int,
    requests: int,
    rounds: int,
    concurrency: int,
    variants: list[Variant],
    sequential: Mapping[str, Figures],
    concurrent: Mapping[str, Figures],
    body_bytes: int,
) -> list[str]:
    """The latency and throughput tables, as lines."""
    lines = [
        f"anonymous card list, first {PAGE} of {cards}+ published cards "
        f"({body_bytes} bytes of JSON); {rounds} rounds × {requests} requests per "
        "variant and pass; load from a child process over keep-alive HTTP/1.1",
        f"{'1 client':<24} {'client p50':>10} {'p99':>9} {'p99 ×raw':>9}"
        f" {'server p50':>11} {'p99':>9} {'p99 ×raw':>9}",
    ]
    raw = variants[0].name
    for variant in variants:
        figures = sequential[variant.name]
        row = f"{variant.name:<24}"
        for samples, floor in (
            (figures.client_ms, sequential[raw].client_ms),
            (figures.server_ms, sequential[raw].server_ms),
        ):
            p99 = pct(samples, 99)
            row += f" {pct(samples, 50):8.2f}ms {p99:7.2f}ms {p99 / pct(floor, 99):8.2f}×"
        lines.append(row)
    floor_rate = statistics.median(concurrent[raw].rates)
    lines.append(
        f"{f'{concurrency} clients':<24} {'req/s':>10} {'×raw':>9} {'client p99':>10}"
        f" {'server p99':>11}"
    )
    for variant in variants:
        figures = concurrent[variant.name]
        rate = statistics.median(figures.rates)
        lines.append(
            f"{variant.name:<24} {rate:10.0f} {rate / floor_rate:8.2f}× "
            f"{pct(figures.client_ms, 99):8.1f}ms {pct(figures.server_ms, 99):9.1f}ms"
        )
    return lines


if __name__ == "__main__":
    asyncio.run(main())

"""Paging: every page of `myNotices` (tokens with 1, 10 and 100 accounts) and
of `corporateActions` (an operator's list) against the first page.

Seeds, through the handlers in this process: `--accounts` holders of one
ISIN, and `--actions` dividends on it (each with its own record date and
positions), each approved, so every holder gets one notice per action; and
`--cards` more announced actions for the card list. Then, from a child
process (`bench.load`), walks every page of each list in order, following
`endCursor`, one request at a time: the first page is asked `FIRST_REPEATS`
times (its median is the baseline), every later page once. A page after the
first costs the cursor condition (`(issuedAt, _id) <` the cursor's, `_id <`
the cursor's for cards) on top of what the first costs; with an index that
serves it, about the same. Each walk stops after `--seconds`.

    .venv/bin/python -m bench.paging [--accounts 500] [--actions 20] [--cards 600]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from bench.commands_throughput import terms as draft_terms
from bench.figures import Figure, Result, print_result
from bench.load import LoadProcess, client, post
from bench.notices_fanout import terms as action_terms
from bench.notices_fanout import valid_isin
from bench.stack import APPROVER, OPERATOR, BenchStack, add_stack_arguments, bench_stack, settled
from domain.principal import ROLE_OPERATOR, SCOPE_NOTICES_READ

PAGE = 20
FIRST_REPEATS = 5
TOKEN_ACCOUNTS = (1, 10, 100)
ISIN = valid_isin(900)
FIRST_DATE = date(2027, 6, 1)

MY_NOTICES = """
query($first: Int, $after: String) {
  myNotices(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id accountId } }
  }
}"""
CORPORATE_ACTIONS = """
query($first: Int, $after: String) {
  corporateActions(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id reference } }
  }
}"""


def account(n: int) -> str:
    return f"PG-{n:06d}"


@dataclass
class Walk:
    first_ms: list[float] = field(default_factory=list)
    later_ms: list[float] = field(default_factory=list)
    items: int = 0
    complete: bool = False


async def _walk(
    url: str, token: str, query: str, root: str, seconds: float, page_size: int
) -> Walk:
    walk = Walk()
    async with client(url, 1) as http:

        async def page(after: str | None) -> dict[str, Any]:
            started = time.perf_counter()
            data = await post(http, token, query, {"first": page_size, "after": after})
            elapsed = (time.perf_counter() - started) * 1000
            (walk.first_ms if after is None else walk.later_ms).append(elapsed)
            connection: dict[str, Any] = data[root]
            return connection

        await page(None)  # warm-up: connection, parsing and validation caches
        walk.first_ms.clear()
        for _ in range(FIRST_REPEATS):
            connection = await page(None)
        deadline = time.perf_counter() + seconds
        walk.items = len(connection["edges"])
        while connection["pageInfo"]["hasNextPage"]:
            if time.perf_counter() > deadline:
                return walk
            connection = await page(connection["pageInfo"]["endCursor"])
            walk.items += len(connection["edges"])
        walk.complete = True
    return walk


def walk(url: str, token: str, query: str, root: str, seconds: float, page_size: int) -> Walk:
    """Every page of `root` in order (in the child), at most `seconds` after the first."""
    return asyncio.run(_walk(url, token, query, root, seconds, page_size))


async def seed(stack: BenchStack, accounts: int, actions: int, cards: int) -> int:
    """Notices for `accounts` × `actions`, `cards` more draft cards; the notices expected."""
    handlers = stack.herald.services.handlers
    holders = [
        {"accountId": account(n), "quantity": str(10 + n % 90), "taxRatePercent": "13"}
        for n in range(accounts)
    ]
    action_ids = []
    for n in range(actions):
        as_of = FIRST_DATE + timedelta(days=n)
        await handlers.record_positions(
            {"isin": ISIN, "asOf": as_of.isoformat(), "positions": holders}, OPERATOR
        )
        announced = await handlers.announce(action_terms(ISIN, as_of), OPERATOR)
        await handlers.approve(announced.action.id, 1, APPROVER)
        action_ids.append(announced.action.id)
    for n in range(cards):
        await handlers.announce(draft_terms(n), OPERATOR)
    expected = accounts * actions
    notices = stack.herald.services.notices
    deadline = time.monotonic() + 120 + expected / 100
    # the projector's per-action counts: one small read (a count over every
    # holder's notices takes seconds on a loaded store)
    while sum(total for total, _, _ in (await notices.by_action(action_ids)).values()) < expected:
        assert time.monotonic() < deadline, "the notices were not all projected"
        await asyncio.sleep(0.5)
    await settled(stack.herald)
    return expected


def _figures(result: Result, label: str, walked: Walk, page: int) -> None:
    first = statistics.median(walked.first_ms)
    extent = f"{walked.items} items" + ("" if walked.complete else ", stopped by the time bound")
    if not walked.later_ms:
        result.notes.append(f"{label}: one page only ({extent}); first page {first:.1f} ms")
        return
    result.add(
        Figure(
            f"{label}, pages after the first, p50",
            statistics.median(walked.later_ms),
            "ms",
            "the first page, p50",
            first,
            "≤ 1.2×",
        ),
        Figure(
            f"{label}, slowest page after the first",
            max(walked.later_ms),
            "ms",
            "the first page, p50",
            first,
        ),
    )
    result.notes.append(
        f"{label}: {len(walked.later_ms) + 1} pages of {page} ({extent}); first page "
        f"{first:.1f} ms (median of {FIRST_REPEATS}), later pages p50 "
        f"{statistics.median(walked.later_ms):.1f} ms, max {max(walked.later_ms):.1f} ms"
    )


async def measure(
    stack: BenchStack,
    load: LoadProcess,
    *,
    accounts: int = 500,
    actions: int = 20,
    cards: int = 600,
    seconds: float = 120.0,
) -> Result:
    """Seed, then walk every page of each list (see the module's docstring)."""
    assert accounts >= max(TOKEN_ACCOUNTS), f"--accounts must be ≥ {max(TOKEN_ACCOUNTS)}"
    result = Result(
        "paging",
        sizes={"accounts": accounts, "actions": actions, "cards": cards, "page": PAGE},
    )
    print(f"seeding {accounts} holders × {actions} actions, {cards} more cards …", flush=True)
    notices = await seed(stack, accounts, actions, cards)
    result.sizes["notices"] = notices
    issuer, url = stack.issuer, stack.herald.base_url
    for size in TOKEN_ACCOUNTS:
        token = issuer.mint(
            f"bench-depositor-{size}",
            accounts=[account(n) for n in range(size)],
            scopes=[SCOPE_NOTICES_READ],
        )
        # at least four pages, however few notices the token has
        page = min(PAGE, max(2, size * actions // 4))
        walked = await load.run(walk, url, token, MY_NOTICES, "myNotices", seconds, page)
        _figures(result, f"myNotices, token with {size} accounts", walked, page)
    operator = issuer.mint("bench-operator", roles=[ROLE_OPERATOR])
    walked = await load.run(
        walk, url, operator, CORPORATE_ACTIONS, "corporateActions", seconds, PAGE
    )
    _figures(result, "corporateActions (operator)", walked, PAGE)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--actions", type=int, default=20)
    parser.add_argument("--cards", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=120.0, help="per list walked")
    add_stack_arguments(parser)
    args = parser.parse_args()
    async with (
        bench_stack("paging", broker=args.broker, keep=args.keep) as stack,
        LoadProcess() as load,
    ):
        result = await measure(
            stack,
            load,
            accounts=args.accounts,
            actions=args.actions,
            cards=args.cards,
            seconds=args.seconds,
        )
    print_result(result, store="SecantusDB (sync-on-commit)", broker=args.broker)


if __name__ == "__main__":
    asyncio.run(main())

"""Write rate as the record grows (issue 16, item 5): the same announce load
against a store holding N stored events, beside the same load on an empty
store, in the same run.

The empty store and each grown one: a fresh SecantusDB and Tansu, the record
seeded in bulk by the load process (`bench.restart.bulk_seed`: N projected
announcements, each with its Idempotency-Key record, as the API leaves them;
its Herald ends with that process's call; seeded without a sync per commit,
then the store started again with one, as Herald runs it), and one whole
Herald (API, relay, projectors) on it. Rounds of `commands` announce
commands from `clients` clients (the load process) alternate between the
empty store and the grown one; the figure is the median round's accepted
commands/s (one event each) beside the empty store's median. A note says how
long the relay and the projectors took to settle after the last round.

    .venv/bin/python -m bench.growth                      # 20 000 and 100 000 stored
    .venv/bin/python -m bench.growth --sizes 5000 --commands 50 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from adapters.auth.dev_issuer import DevIssuer
from bench.commands_throughput import ANNOUNCE, announce_variables
from bench.figures import Figure, Result, print_result
from bench.load import GraphQLLoad, LoadProcess, graphql_load
from bench.restart import bulk_seed, seed_stack
from bench.stack import settled
from devstack.herald import RunningHerald
from domain.principal import ROLE_OPERATOR
from settings import Settings

WARM_UP = 10
GOAL = "≥ 0.9×"


@dataclass(frozen=True)
class Size:
    events: int
    seed_seconds: float
    rate: float  # commands/s, the median of the rounds
    baseline: float  # the empty store's, the median of the rounds between them
    settle_seconds: float


def seed(settings: Settings, issuer_folder: Path, events: int) -> None:
    """`bulk_seed` in the load process: the seeding Herald's tasks and
    connections end there, and none of it shares this process's event loop."""
    asyncio.run(bulk_seed(settings, DevIssuer(issuer_folder), events, through_api=True))


class Announcer:
    """Rounds of the announce load against one running Herald."""

    def __init__(self, load: LoadProcess, herald: RunningHerald, clients: int, seconds: float):
        self._load = load
        self._herald = herald
        self._token = herald.issuer.mint("bench", roles=[ROLE_OPERATOR])
        self._clients = clients
        self._seconds = seconds

    async def round(self, commands: int) -> float:
        """Commands/s of `commands` announces, once the last round settled."""
        await settled(self._herald)
        load = GraphQLLoad(
            self._herald.base_url,
            self._token,
            ANNOUNCE,
            announce_variables,
            commands,
            self._clients,
            self._seconds,
        )
        return (await self._load.run(graphql_load, load)).rate


async def one_size(
    load: LoadProcess,
    empty: Announcer,
    events: int,
    *,
    commands: int,
    rounds: int,
    clients: int,
    seconds: float,
) -> Size:
    """The announce rate against a fresh store seeded with `events` events,
    in `rounds` rounds alternating with rounds against the empty store (the
    shared machine's load swings within minutes: the medians compare like
    with like)."""
    async with seed_stack("growth") as stack:
        seeding = time.perf_counter()
        await load.run(seed, stack.settings, stack.work / "issuer", events)
        seed_seconds = time.perf_counter() - seeding
        await stack.durable()
        async with RunningHerald(stack.settings, stack.issuer) as herald:
            grown = Announcer(load, herald, clients, seconds)
            await grown.round(WARM_UP)
            rates: list[float] = []
            baselines: list[float] = []
            for _ in range(rounds):
                baselines.append(await empty.round(commands))
                rates.append(await grown.round(commands))
            settling = time.perf_counter()
            await settled(herald)
            settle_seconds = time.perf_counter() - settling
    return Size(
        events, seed_seconds, statistics.median(rates), statistics.median(baselines), settle_seconds
    )


async def measure(
    load: LoadProcess,
    *,
    sizes: Sequence[int] = (20_000, 100_000),
    commands: int = 100,
    rounds: int = 5,
    clients: int = 4,
    seconds: float = 60.0,
    progress: bool = True,
) -> Result:
    """Announce commands/s on stores holding each of `sizes` events against
    an empty store's (the baseline), `rounds` rounds of `commands` each
    (a round stops after `seconds`)."""
    result = Result(
        "growth",
        sizes={
            "stored_events": list(sizes),
            "commands": commands,
            "rounds": rounds,
            "clients": clients,
        },
    )
    async with AsyncExitStack() as running:
        empty_stack = await running.enter_async_context(seed_stack("growth-empty"))
        await empty_stack.durable()
        empty_herald = await running.enter_async_context(
            RunningHerald(empty_stack.settings, empty_stack.issuer)
        )
        empty = Announcer(load, empty_herald, clients, seconds)
        await empty.round(WARM_UP)
        for events in sizes:
            size = await one_size(
                load,
                empty,
                events,
                commands=commands,
                rounds=rounds,
                clients=clients,
                seconds=seconds,
            )
            if progress:
                print(f"  growth: {size}", flush=True)
            result.notes.append(
                f"{events:,} stored: seeded in {size.seed_seconds:.0f} s; relay and "
                f"projectors settled {size.settle_seconds:.1f} s after its last round"
            )
            result.add(
                Figure(
                    f"announce, {clients} clients, {events:,} stored events",
                    size.rate,
                    "commands/s",
                    "the same load on an empty store",
                    size.baseline,
                    GOAL,
                )
            )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--commands", type=int, default=100, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    async with LoadProcess() as load:
        result = await measure(
            load,
            sizes=args.sizes,
            commands=args.commands,
            rounds=args.rounds,
            clients=args.clients,
            seconds=args.seconds,
        )
    print_result(result)


if __name__ == "__main__":
    asyncio.run(main())

"""`herald dlq list|replay`: the records Herald parked as dead letters, and the
deliveries a channel dead-lettered (`--channel`, see cli/deliveries.py).

`list` prints one line per parked letter (id, source, kind, where, event,
reason). `replay` applies each letter again — a projection letter through its
projector (the event as recorded in the store, else the parked record), an
outbox letter by queueing the event for the relay again — and marks it
replayed; one that fails again stays parked with the new reason. Replaying
what is already applied changes nothing (projectors are idempotent).

Sources are filtered by prefix (`--projection NAME` is `projection:NAME`); a
source family's replay is one entry of `REPLAYERS`, so other families (e.g.
delivery channels) plug in beside these.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from cli.deliveries import list_deliveries, replay_dead_letters
from domain.dead_letters import (
    PROJECTION_SOURCE_PREFIX,
    SOURCE_OUTBOX,
    DeadLetter,
    one_line,
    projection_source,
)
from domain.preferences import DeliveryChannel

if TYPE_CHECKING:
    from services import Services

Replayer = Callable[["Services", DeadLetter], Awaitable[None]]

PROGRESS_FROM = 20  # lists this long print a progress line while replaying


class StillFailing(Exception):
    """The letter cannot be applied yet; the message says why."""


async def _replay_projection(services: Services, letter: DeadLetter) -> None:
    from adapters.kafka.codec import decode

    name = letter.source.removeprefix(PROJECTION_SOURCE_PREFIX)
    projectors = {projector.name: projector for projector in services.projectors()}
    projector = projectors.get(name)
    if projector is None:
        raise StillFailing(f"no projector named {name!r}")
    event = None if letter.event_id is None else await services.events.get(letter.event_id)
    if event is None:
        try:
            event = decode((letter.payload or "").encode())
        except Exception as exc:
            raise StillFailing(f"the record still does not decode: {one_line(exc)}") from exc
    await projector.apply([event])
    await services.projection_state.record_applied(name, {event.aggregate_id: event.version})


async def _replay_outbox(services: Services, letter: DeadLetter) -> None:
    if letter.event_id is None or not await services.events.unpark([letter.event_id]):
        raise StillFailing("the event is not parked in the outbox")


REPLAYERS: dict[str, Replayer] = {
    PROJECTION_SOURCE_PREFIX: _replay_projection,
    SOURCE_OUTBOX: _replay_outbox,
}


def _replayer(source: str) -> Replayer | None:
    for prefix, replayer in REPLAYERS.items():
        if source.startswith(prefix):
            return replayer
    return None


def source_prefix(args: argparse.Namespace) -> str | None:
    """The source filter the options name (None: every source)."""
    if args.projection:
        return projection_source(args.projection)
    return None


def describe(letter: DeadLetter) -> str:
    """One line per letter, tab-separated (id, source, kind, parked at, where, event, reason)."""
    where = (
        f"{letter.topic}:{letter.partition}@{letter.offset}" if letter.topic is not None else "-"
    )
    event = (
        f"{letter.event_id} ({letter.aggregate_type} {letter.aggregate_id} v{letter.version})"
        if letter.event_id
        else "-"
    )
    return "\t".join(
        [
            letter.id,
            letter.source,
            letter.kind,
            letter.parked_at.isoformat(timespec="seconds"),
            where,
            event,
            f"attempts={letter.attempts}",
            letter.reason,
        ]
    )


async def list_letters(services: Services, prefix: str | None, out: TextIO) -> int:
    letters = await services.dead_letters.find(prefix)
    for letter in letters:
        print(describe(letter), file=out)
    print(f"{len(letters)} dead letter(s) parked", file=sys.stderr)
    return len(letters)


async def replay_letters(
    services: Services,
    prefix: str | None,
    ids: Sequence[str] = (),
    out: TextIO = sys.stdout,
    progress: TextIO = sys.stderr,
) -> tuple[int, int]:
    """Replay the parked letters chosen; returns (replayed, still failing)."""
    letters = await services.dead_letters.find(prefix, ids)
    replayed = failing = 0
    for done, letter in enumerate(letters, start=1):
        replayer = _replayer(letter.source)
        try:
            if replayer is None:
                raise StillFailing(f"no replay for source {letter.source!r}")
            await replayer(services, letter)
        except Exception as exc:
            failing += 1
            reason = one_line(exc)
            await services.dead_letters.failed_again(letter.id, reason, datetime.now(UTC))
            print(f"still failing: {letter.id}: {reason}", file=out)
        else:
            replayed += 1
            await services.dead_letters.replayed(
                letter.id, datetime.now(UTC), attempts=letter.attempts
            )
        if len(letters) >= PROGRESS_FROM and (done % 10 == 0 or done == len(letters)):
            print(f"replayed {replayed}, failing {failing} of {len(letters)}", file=progress)
    print(f"{replayed} replayed, {failing} still failing", file=out)
    return replayed, failing


def _run(work: Callable[[Services], Awaitable[int]]) -> int:
    from cli.preflight import check_reachable
    from services import Services
    from settings import Settings

    settings = Settings.from_env().with_overrides(run_relay=False, run_projectors=False)
    for warning in check_reachable(settings, need_broker=False, ask_broker=False):
        print(f"herald: {warning}", file=sys.stderr)

    async def main() -> int:
        services = Services(settings)
        try:
            return await work(services)
        finally:
            await services.client.close()

    return asyncio.run(main())


def _families(args: argparse.Namespace) -> tuple[bool, bool]:
    """Which families the options choose: (parked records, dead-lettered deliveries).
    `--channel` names deliveries only, `--projection` parked records only; neither, both."""
    return args.channel is None, args.projection is None


def _cmd_list(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        records, deliveries = _families(args)
        if records:
            await list_letters(services, source_prefix(args), sys.stdout)
        if deliveries:
            await list_deliveries(services.deliveries, args.channel, sys.stdout)
        return 0

    return _run(work)


def _cmd_replay(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        records, deliveries = _families(args)
        failing = 0
        if records:
            _, failing = await replay_letters(services, source_prefix(args), args.id or ())
        if deliveries:
            count = await replay_dead_letters(
                services.deliveries,
                services.preferences,
                channel=args.channel,
                ids=args.id or (),
                progress=True,
            )
            print(f"requeued {count} deliveries")
        return 1 if failing else 0

    return _run(work)


def _filters(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--projection", metavar="NAME", help="only this projection's letters (cards, notices)"
    )
    which.add_argument(
        "--channel",
        choices=[channel.value for channel in DeliveryChannel],
        help="only the dead-lettered deliveries of this channel",
    )


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
) -> None:
    """Add `dlq list` and `dlq replay` to the `herald` parser."""
    dlq = sub.add_parser(
        "dlq",
        help="list or replay the records parked as dead letters",
        description="Records Herald parked because they could not be applied or published "
        "(a poison Kafka record, an event the broker refuses) and deliveries a channel "
        "refused or failed past HERALD_DELIVERY_MAX_ATTEMPTS: list them, and replay them "
        "once the cause is fixed (a replayed delivery is sent once, under its original "
        "message id). Reads HERALD_MONGO_URI / HERALD_MONGO_DATABASE.",
        formatter_class=formatter_class,
    )
    commands = dlq.add_subparsers(
        dest="dlq_command", required=True, metavar="ACTION", help="list or replay"
    )
    listing = commands.add_parser(
        "list",
        help="print the parked dead letters, oldest first",
        description="One tab-separated line per parked letter: id, source, kind, parked at, "
        "topic:partition@offset, event, attempts, reason.",
        formatter_class=formatter_class,
    )
    _filters(listing)
    listing.set_defaults(func=_cmd_list)
    replay = commands.add_parser(
        "replay",
        help="apply parked dead letters again (once their cause is fixed)",
        description="Apply each chosen letter again; those that still fail stay parked with "
        "the new reason (exit status 1).",
        formatter_class=formatter_class,
    )
    _filters(replay)
    replay.add_argument("--id", nargs="*", metavar="ID", help="only these letters")
    replay.set_defaults(func=_cmd_replay)

"""`herald dlq list|replay` for deliveries: dead-lettered (notice, version,
channel) deliveries, listed or put back in their channel's queue.

The functions take the stores, so either CLI shape (`herald dlq …` with a
`--kind deliveries`, or a sub-command of its own) can call them; `run` is the
argparse entry. A replayed delivery gets fresh attempts and the account's
current address (a fixed push token, a corrected e-mail); the running
dispatcher sends it once, under its original message id.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from adapters.mongo.client import Document
from adapters.mongo.deliveries import MongoDeliveryLog
from adapters.mongo.preferences import MongoPreferenceStore
from domain.preferences import DeliveryChannel


async def list_dead_letters(
    deliveries: MongoDeliveryLog, channel: str | None = None
) -> list[Document]:
    """Dead-lettered deliveries, by channel and id."""
    return await deliveries.dead_letters(None if channel is None else DeliveryChannel(channel))


async def replay_dead_letters(
    deliveries: MongoDeliveryLog,
    preferences: MongoPreferenceStore,
    *,
    channel: str | None = None,
    ids: Sequence[str] = (),
    progress: bool = False,
) -> int:
    """Requeue the dead letters of `channel` (all channels: None), only `ids`
    when given; returns how many were requeued."""
    chosen = await list_dead_letters(deliveries, channel)
    if ids:
        wanted = set(ids)
        chosen = [d for d in chosen if d["_id"] in wanted]
    current = await preferences.get_many({str(d["accountId"]) for d in chosen})
    requeued = 0
    for index, dead in enumerate(chosen, 1):
        prefs = current.get(str(dead["accountId"]))
        address = None if prefs is None else prefs.address(DeliveryChannel(dead["channel"]))
        requeued += await deliveries.requeue(str(dead["_id"]), address, datetime.now(UTC))
        if progress and (index % 100 == 0 or index == len(chosen)):
            print(f"replayed {index}/{len(chosen)}", file=sys.stderr)
    return requeued


def run(args: argparse.Namespace) -> int:
    """`herald dlq list|replay [--channel C] [--id ID …]` against the configured store."""
    from adapters.mongo.client import connect
    from settings import Settings

    async def main() -> int:
        settings = Settings.from_env()
        client = connect(settings.mongo_uri)
        db = client[settings.mongo_database]
        deliveries = MongoDeliveryLog(db)
        try:
            if args.action == "list":
                for dead in await list_dead_letters(deliveries, args.channel):
                    print(
                        f"{dead['_id']}\t{dead['channel']}\t{dead['accountId']}\t"
                        f"attempts={dead['attempts']}\t{dead.get('lastError') or ''}"
                    )
                return 0
            count = await replay_dead_letters(
                deliveries,
                MongoPreferenceStore(db),
                channel=args.channel,
                ids=args.id or (),
                progress=True,
            )
            print(f"requeued {count} deliveries")
            return 0
        finally:
            await client.close()

    return asyncio.run(main())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("--channel", choices=[c.value for c in DeliveryChannel])
    parser.add_argument("--id", nargs="*", help="replay only these delivery ids")

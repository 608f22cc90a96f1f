"""`herald dlq list|replay` for deliveries: dead-lettered (notice, version,
channel) deliveries, listed or put back in their channel's queue.

The functions take the stores; `herald dlq … --channel C` (cli/dlq.py) calls
them. A replayed delivery gets fresh attempts and the account's
current address (a fixed push token, a corrected e-mail); the running
dispatcher sends it once, under its original message id.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from domain.delivery import Delivery
from domain.ports import DeliveryLog, PreferenceStore
from domain.preferences import DeliveryChannel


async def list_dead_letters(deliveries: DeliveryLog, channel: str | None = None) -> list[Delivery]:
    """Dead-lettered deliveries, by channel and id."""
    return await deliveries.dead_letters(None if channel is None else DeliveryChannel(channel))


async def replay_dead_letters(
    deliveries: DeliveryLog,
    preferences: PreferenceStore,
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
        chosen = [d for d in chosen if d.key in wanted]
    current = await preferences.current({d.account_id for d in chosen})
    requeued = 0
    for index, dead in enumerate(chosen, 1):
        prefs = current.get(dead.account_id)
        address = None if prefs is None else prefs.address(dead.channel)
        requeued += await deliveries.requeue(dead.key, address, datetime.now(UTC))
        if progress and (index % 100 == 0 or index == len(chosen)):
            print(f"replayed {index}/{len(chosen)}", file=sys.stderr)
    return requeued


async def list_deliveries(deliveries: DeliveryLog, channel: str | None, out: TextIO) -> int:
    """Print one tab-separated line per dead-lettered delivery (id, channel,
    account, attempts, last error); returns how many."""
    dead_letters = await list_dead_letters(deliveries, channel)
    for dead in dead_letters:
        print(
            f"{dead.key}\t{dead.channel.value}\t{dead.account_id}\t"
            f"attempts={dead.attempts}\t{dead.last_error or ''}",
            file=out,
        )
    print(f"{len(dead_letters)} dead-lettered deliveries", file=sys.stderr)
    return len(dead_letters)

"""CardFanout with a PublicGeneration (the edge's read cache, edge/README.md
"Read cache"): on every change of the cards' public view the shared
generation moves first, and while it moves this process's own cache answers
nothing (its watermark is None), so neither cache answers older than the
other. In memory: the order is the subject, not the store."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from adapters.memory.feeds import MemoryCardPublicationFeed
from queries.feeds import CardFanout

HANG_SECONDS = 30.0  # a guard against a hang, not a timed assertion


class HeldGeneration:
    """A PublicGeneration whose advances wait until released, recording the
    fan-out's watermark as each one starts."""

    def __init__(self) -> None:
        self.fanout: CardFanout | None = None
        self.watermarks: list[Hashable | None] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def advance(self) -> None:
        assert self.fanout is not None
        self.watermarks.append(self.fanout.watermark)
        self.started.set()
        await self.release.wait()
        self.release.clear()


async def advanced(generation: HeldGeneration) -> None:
    async with asyncio.timeout(HANG_SECONDS):
        await generation.started.wait()
    generation.started.clear()


async def watermark(fanout: CardFanout) -> Hashable:
    """The fan-out's watermark once it is set again (the advance returned)."""
    async with asyncio.timeout(HANG_SECONDS):
        while (current := fanout.watermark) is None:  # noqa: ASYNC110 - a property, no event
            await asyncio.sleep(0.01)
    return current


async def test_the_generation_moves_before_the_watermark_and_nothing_is_cached_meanwhile() -> None:
    feed = MemoryCardPublicationFeed()
    generation = HeldGeneration()
    fanout = CardFanout(feed, generation=generation)
    generation.fanout = fanout
    await fanout.start()
    try:
        await advanced(generation)  # the stream opened (RESET)
        assert fanout.watermark is None
        generation.release.set()
        before = await watermark(fanout)

        feed.change(None)  # a card's public view changed
        await advanced(generation)
        assert generation.watermarks[-1] is None  # nothing answered from the old entries
        for _ in range(3):  # however long Redis takes
            await asyncio.sleep(0)
            assert fanout.watermark is None
        generation.release.set()
        assert await watermark(fanout) != before  # entries made before are never answered again
    finally:
        generation.release.set()
        await fanout.stop()

"""Group commit: concurrent callers' durable writes, batched into one.

While one write is in flight, callers queue; when it returns, everything
queued goes in the next write. There is no timer: a lone caller's write
starts at once and pays no added latency, and under load a batch grows to
however many callers arrived during the previous write. It pays on a store
whose cost is per commit rather than per document: SecantusDB with
sync-on-commit stores an `insert_many` of 20 documents in about the time of
one `insert_one` (docs/benchmarks.md, "The command path").

The write runs in a task of its own, so a caller cancelled while it waits
neither cancels nor loses the others' writes: a caller cancelled before its
item was taken is dropped from the queue (nothing of it is written); one
cancelled after hears nothing of a write that goes on (as when a lone write
is cancelled in flight: it may or may not land, which the idempotency
protocol already covers). The write task runs in the context of the caller
that started it (its trace and its command monitoring see the whole batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from pymongo import errors as mongo_errors
from pymongo.asynchronous.collection import AsyncCollection

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.ports import DuplicateKey, StoreError, StoreRefused, StoreUnavailable

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

# Items per write at most (a batch of commands is small; this bounds the
# message and the time one write holds the others back).
MAX_BATCH = 256
_DUPLICATE_KEY_CODE = 11000


class GroupCommit(Generic[ItemT, ResultT]):
    """Batches `submit`ted items into calls of `write(items)`, one at a time.

    `write` returns one outcome per item, in order: a result, or an
    exception that is that item's alone (e.g. its duplicate key). An
    exception `write` raises is every item's of that batch (the store did not
    answer: each caller hears it, as it would of its own write)."""

    def __init__(
        self,
        write: Callable[[Sequence[ItemT]], Awaitable[Sequence[ResultT | Exception]]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._queue: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: ItemT) -> ResultT:
        """`item` written in the next batch; its result, or its error raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._queue.append((item, future))
        runner = self._runner
        if runner is None or runner.done() or runner.get_loop() is not loop:
            self._runner = loop.create_task(self._drain())
        # Cancelling this await cancels `future`: a batch not yet taken skips it.
        return await future

    async def _drain(self) -> None:
        try:
            while batch := self._take():
                await self._commit(batch)
        except BaseException:
            # This task itself was cancelled (the loop is closing): no caller
            # waits forever on a write that will not happen.
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            if self._runner is asyncio.current_task():
                self._runner = None

    def _take(self) -> list[tuple[ItemT, asyncio.Future[ResultT]]]:
        loop = asyncio.get_running_loop()  # (a caller of a closed loop waits no more)
        pending = [
            (item, future)
            for item, future in self._queue
            if not future.done() and future.get_loop() is loop
        ]
        batch, self._queue = pending[: self._max_batch], pending[self._max_batch :]
        return batch

    async def _commit(self, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        try:
            outcomes = await self._write([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise StoreError(f"a batch of {len(batch)} writes had {len(outcomes)} outcomes")
        except Exception as exc:  # the whole batch's: every caller hears it
            outcomes = [exc] * len(batch)
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # its caller was cancelled while the write ran
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def write_errors(count: int, exc: mongo_errors.BulkWriteError) -> list[Exception | None]:
    """Each operation's own error of an unordered bulk write of `count`
    operations (None: it was written), mapped back by the error's `index`:
    a duplicate key is that operation's DuplicateKey (with the key the store
    reported), any other write error its StoreError. A write concern error
    leaves every write's durability unknown: StoreUnavailable, raised."""
    details: Any = exc.details or {}
    if details.get("writeConcernErrors"):
        raise StoreUnavailable(f"the batch's durability is unknown: {exc}") from exc
    errors: list[Exception | None] = [None] * count
    for error in details.get("writeErrors") or []:
        index = int(error["index"])
        message = str(error.get("errmsg") or exc)
        if error.get("code") == _DUPLICATE_KEY_CODE:
            errors[index] = DuplicateKey(message, error.get("keyValue"))
        else:
            errors[index] = StoreError(message)
    return errors


async def insert_unordered(
    collection: AsyncCollection[Document], documents: Sequence[Document]
) -> list[Exception | None]:
    """Insert `documents` in one unordered write; each one's own error (see
    `write_errors`), None for each one stored. A failure of the whole write
    (the store unavailable) is raised. A batch the driver refuses to encode
    (one document too large or not BSON) is written one document at a time,
    so the refusal is only its own document's."""
    try:
        async with translated():
            try:
                await collection.insert_many(documents, ordered=False)
            except mongo_errors.BulkWriteError as exc:
                return write_errors(len(documents), exc)
    except StoreRefused:
        if len(documents) == 1:
            raise
        return list(await asyncio.gather(*(_insert_alone(collection, d) for d in documents)))
    return [None] * len(documents)


async def _insert_alone(
    collection: AsyncCollection[Document], document: Document
) -> Exception | None:
    try:
        async with translated():
            await collection.insert_one(document)
    except (DuplicateKey, StoreRefused) as exc:
        return exc
    return None

"""The per-action notice counts stay exact under concurrent writers.

Hypothesis draws sequences of what the notices projector does to one
action — reconcile a range of accounts to some notice version, acknowledge a
version of one notice, repeat either (a redelivery) — and three concurrent
writers play them against a real store, as two workers and a redelivery
would. Whatever the interleaving, the counts kept beside the notices must
equal the notices counted one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from hypothesis import strategies as st

from adapters.mongo.notice_projection import NOTICES, MongoNoticeProjectionStore
from adapters.mongo.notices import MongoNoticeStore
from domain.notices import notice_id
from domain.ports import NoticeRecord, StoredIssue
from tests.builders import notice_record
from tests.support import drawn

ACTION = "CA-COUNTS"
ACCOUNTS = ("A1", "A2", "A3", "A4")
AT = datetime(2026, 12, 20, tzinfo=UTC)


@dataclass(frozen=True)
class Reconcile:
    accounts: frozenset[str]
    version: int


@dataclass(frozen=True)
class Acknowledge:
    account: str
    version: int


Step = Reconcile | Acknowledge

steps = st.one_of(
    st.builds(Reconcile, st.frozensets(st.sampled_from(ACCOUNTS), min_size=1), st.integers(1, 3)),
    st.builds(Acknowledge, st.sampled_from(ACCOUNTS), st.integers(1, 3)),
)
writers = st.lists(st.lists(steps, min_size=1, max_size=8), min_size=3, max_size=3)


def planned(step: Reconcile, stored: Mapping[str, StoredIssue]) -> Sequence[NoticeRecord]:
    return [
        notice_record(a, ACTION, step.version, issued_at=AT)
        for a in sorted(step.accounts)
        if a not in stored or stored[a].version != step.version
    ]


async def play(store: MongoNoticeProjectionStore, writer: Sequence[Step]) -> None:
    for step in writer:
        if isinstance(step, Reconcile):
            first, last = min(step.accounts), max(step.accounts)
            await store.reconcile_range(ACTION, first, last, partial(planned, step))
        else:
            await store.acknowledge(notice_id(ACTION, step.account), step.version, AT)


async def test_counts_equal_the_notices_whatever_the_interleaving(db: Any) -> None:
    store = MongoNoticeProjectionStore(db)
    await store.ensure_indexes()
    counted_any = 0
    for example in drawn(writers, 25):
        await db[NOTICES].delete_many({})
        await asyncio.gather(*(play(store, writer) for writer in example))

        notices = [n async for n in db[NOTICES].find({"corporateActionId": ACTION})]
        counted = (
            len(notices),
            sum(n["deliveredAt"] is not None for n in notices),
            sum(n["acknowledgedAt"] is not None for n in notices),
        )
        kept = (await MongoNoticeStore(db).by_action([ACTION])).get(ACTION, (0, 0, 0))
        assert kept == counted, example
        counted_any += counted[0] > 0 and counted[2] > 0
    assert counted_any > 0  # some examples did issue and acknowledge notices


async def test_delivery_and_acknowledgement_marks_do_not_restart_a_fan_out_chunk(db: Any) -> None:
    """A delivery or acknowledgement mark committed while the projector's
    chunk transaction runs moves a summary document of its own: the chunk
    does not meet a write conflict and start over (with one summary document
    for both, every mark of a fan-out's first notices made the projector redo
    its 5 000-notice chunk), and the counts still add up."""
    store, marks = MongoNoticeProjectionStore(db), MongoNoticeProjectionStore(db)
    await store.ensure_indexes()
    first = notice_id(ACTION, "A1")
    await store.reconcile_range(
        ACTION, "A1", "A1", partial(planned, Reconcile(frozenset({"A1"}), 1))
    )
    attempts = 0
    with_delivery = store._with_delivery

    async def marked_meanwhile(notices: Any, session: Any) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # inside the chunk's transaction, after its reads
            assert await marks.mark_delivered([(first, 1)], AT) == 1
            assert await marks.acknowledge(first, 1, AT)
        return await with_delivery(notices, session)

    store._with_delivery = marked_meanwhile  # type: ignore[method-assign]
    chunk = Reconcile(frozenset({"A2", "A3"}), 1)
    assert await store.reconcile_range(ACTION, "A2", "A3", partial(planned, chunk)) == 2
    assert attempts == 1
    assert await MongoNoticeStore(db).by_action([ACTION]) == {ACTION: (3, 1, 1)}

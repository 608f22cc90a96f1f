"""The planner on the real store: a redelivered NoticeIssued batch plans
nothing new; a cancellation follows the channels of the earlier version; a
version with no outbound channel is delivered at once."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.channels.push import PushChannel
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from delivery.dispatcher import DeliveryPlanner
from domain.codes import NoticeKind
from domain.delivery import IssuedNotice, notice_issued_event
from domain.preferences import DeliveryChannel, Preferences
from tests.delivery.support import fresh
from tests.support import RunningHerald

AT = datetime(2026, 12, 16, tzinfo=UTC)


def issued(notice_id: str, account: str, version: int, kind: NoticeKind) -> IssuedNotice:
    return IssuedNotice(notice_id, version, kind, account, "CA1", version, AT, {"reference": "R"})


async def test_replanning_is_idempotent_and_a_cancellation_follows_the_original(
    herald: RunningHerald,
) -> None:
    services = herald.services
    push = PushChannel("http://127.0.0.1:9/push")  # never called: planning sends nothing
    planner = DeliveryPlanner(
        services.deliveries,
        services.preferences,
        MongoNoticeProjectionStore(services.db),
        {DeliveryChannel.PUSH: push},
        [],
    )
    account, notice_id = fresh("acc"), fresh("NT")
    await services.preferences.save(
        Preferences(account, (DeliveryChannel.PUSH,), push_token="tok-1"), 1, AT
    )
    first = notice_issued_event(issued(notice_id, account, 1, NoticeKind.NEW), AT)
    await planner.apply([first])
    await planner.apply([first])  # redelivered after a crash before the offset commit
    planned = await services.deliveries.of_version(notice_id, 1)
    assert [(d["channel"], d["address"], d["status"]) for d in planned] == [
        ("PUSH", "tok-1", "PENDING")
    ]
    # The depositor drops PUSH; the cancellation still goes where the original went.
    await services.preferences.save(Preferences(account, ()), 2, AT)
    cancel = notice_issued_event(issued(notice_id, account, 2, NoticeKind.CANCELLATION), AT)
    await planner.apply([cancel])
    [cancellation] = await services.deliveries.of_version(notice_id, 2)
    assert (cancellation["channel"], cancellation["address"]) == ("PUSH", "tok-1")
    assert cancellation["messageId"] == f"herald-{notice_id}-v2"
    # A new notice for this account now goes nowhere outbound: nothing planned.
    other = fresh("NT")
    await planner.apply([notice_issued_event(issued(other, account, 1, NoticeKind.NEW), AT)])
    assert await services.deliveries.of_version(other, 1) == []
    await push.close()

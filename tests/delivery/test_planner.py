"""The planner on the real store: a redelivered NoticeIssued batch plans
nothing new; a cancellation follows the channels of the earlier version; a
version with no outbound channel is delivered at once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from adapters.channels.push import PushChannel
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from delivery.dispatcher import DeliveryPlanner
from domain.codes import NoticeKind
from domain.delivery import (
    DeliveryStatus,
    IssuedNotice,
    issued_versions,
    notice_issued_event,
    notices_issued_event,
)
from domain.preferences import DeliveryChannel, Preferences
from tests.delivery.support import fresh
from tests.support import RunningHerald

AT = datetime(2026, 12, 16, tzinfo=UTC)


def issued(notice_id: str, account: str, version: int, kind: NoticeKind) -> IssuedNotice:
    return IssuedNotice(notice_id, version, kind, account, "CA1", version, AT, {"reference": "R"})


def _planner(herald: RunningHerald, push: PushChannel) -> DeliveryPlanner:
    services = herald.services
    return DeliveryPlanner(
        services.deliveries,
        services.preferences,
        MongoNoticeProjectionStore(services.db),
        {DeliveryChannel.PUSH: push},
        [],
        record=services.events,
        projections=services.projection_state,
    )


async def test_replanning_is_idempotent_and_a_cancellation_follows_the_original(
    herald: RunningHerald,
) -> None:
    services = herald.services
    push = PushChannel("http://127.0.0.1:9/push")  # never called: planning sends nothing
    planner = _planner(herald, push)
    account, notice_id = fresh("acc"), fresh("NT")
    await services.preferences.save(
        Preferences(account, (DeliveryChannel.PUSH,), push_token="tok-1"), 1, 0, AT
    )
    first = notice_issued_event(issued(notice_id, account, 1, NoticeKind.NEW), AT)
    await planner.apply([first])
    await planner.apply([first])  # redelivered after a crash before the offset commit
    planned = await services.deliveries.of_version(notice_id, 1)
    assert [(d.channel, d.address, d.status) for d in planned] == [
        (DeliveryChannel.PUSH, "tok-1", DeliveryStatus.PENDING)
    ]
    # The depositor drops PUSH; the cancellation still goes where the original went.
    await services.preferences.save(Preferences(account, ()), 2, 0, AT)
    cancel = notice_issued_event(issued(notice_id, account, 2, NoticeKind.CANCELLATION), AT)
    await planner.apply([cancel])
    [cancellation] = await services.deliveries.of_version(notice_id, 2)
    assert (cancellation.channel, cancellation.address) == (DeliveryChannel.PUSH, "tok-1")
    assert cancellation.message_id == f"herald-{notice_id}-v2"
    # A new notice for this account now goes nowhere outbound: nothing planned.
    other = fresh("NT")
    await planner.apply([notice_issued_event(issued(other, account, 1, NoticeKind.NEW), AT)])
    assert await services.deliveries.of_version(other, 1) == []
    await push.close()


async def test_a_version_goes_where_the_preferences_in_force_at_its_issue_said(
    herald: RunningHerald,
) -> None:
    """A preference change that lands between the issue and the plan (projected
    before the planner reads the NoticeIssued event) does not redirect the
    version: it is planned from the preferences in force at its issue, the
    latest set at or before the global sequence of its NoticeIssued event."""
    services = herald.services
    push = PushChannel("http://127.0.0.1:9/push")  # never called: planning sends nothing
    planner = _planner(herald, push)
    account, notice_id, later = fresh("acc"), fresh("NT"), fresh("NT")
    await services.preferences.save(
        Preferences(account, (DeliveryChannel.PUSH,), push_token="tok-at-issue"), 1, 100, AT
    )
    issued_event = replace(
        notice_issued_event(issued(notice_id, account, 1, NoticeKind.NEW), AT), sequence=150
    )
    # The depositor changes the token after the issue; the change is projected first.
    await services.preferences.save(
        Preferences(account, (DeliveryChannel.PUSH,), push_token="tok-changed"), 2, 200, AT
    )
    later_event = replace(
        notice_issued_event(issued(later, account, 1, NoticeKind.NEW), AT), sequence=250
    )
    await planner.apply([issued_event, later_event])
    [planned] = await services.deliveries.of_version(notice_id, 1)
    assert planned.address == "tok-at-issue"
    [after_change] = await services.deliveries.of_version(later, 1)
    assert after_change.address == "tok-changed"
    await push.close()


async def test_a_batched_notice_issued_plans_each_of_its_versions_once(
    herald: RunningHerald,
) -> None:
    """A fan-out issues its versions in batches (one `NoticeIssued` of schema 2
    for up to ISSUED_PER_EVENT versions): each version in it is planned as if
    issued alone, and a redelivered batch plans nothing new."""
    services = herald.services
    push = PushChannel("http://127.0.0.1:9/push")  # never called: planning sends nothing
    planner = _planner(herald, push)
    accounts = [fresh("acc") for _ in range(3)]
    for n, account in enumerate(accounts[:2]):
        await services.preferences.save(
            Preferences(account, (DeliveryChannel.PUSH,), push_token=f"tok-{n}"), 1, 0, AT
        )
    notices = [issued(fresh("NT"), account, 1, NoticeKind.NEW) for account in accounts]
    batch = replace(notices_issued_event("CA1", notices, AT, 1), sequence=500)
    assert issued_versions(batch) == notices
    await planner.apply([batch])
    await planner.apply([batch])  # redelivered
    for n, notice in enumerate(notices[:2]):
        [planned] = await services.deliveries.of_version(notice.notice_id, 1)
        assert (planned.channel, planned.address) == (DeliveryChannel.PUSH, f"tok-{n}")
    # the third account has no preferences and the planner no default channel
    assert await services.deliveries.of_version(notices[2].notice_id, 1) == []
    await push.close()


async def test_versions_stored_delivered_at_issue_are_not_planned(herald: RunningHerald) -> None:
    """A batch whose issuer had no channel on says so (`deliveredAtIssue`):
    the planner plans none of its versions, even for an account whose
    preferences name a channel this planner has on."""
    services = herald.services
    push = PushChannel("http://127.0.0.1:9/push")
    planner = _planner(herald, push)
    account, notice_id = fresh("acc"), fresh("NT")
    await services.preferences.save(
        Preferences(account, (DeliveryChannel.PUSH,), push_token="tok-1"), 1, 0, AT
    )
    version = issued(notice_id, account, 1, NoticeKind.NEW)
    await planner.apply([notices_issued_event("CA1", [version], AT, 1, delivered_at_issue=True)])
    assert await services.deliveries.of_version(notice_id, 1) == []
    # the same version in a batch without the flag is planned: the flag decided
    await planner.apply([notices_issued_event("CA1", [version], AT, 1)])
    assert [d.channel for d in await services.deliveries.of_version(notice_id, 1)] == [
        DeliveryChannel.PUSH
    ]
    await push.close()

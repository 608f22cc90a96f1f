"""Resolvers of the delivery read side: `DepositorNotice.deliveries` and the
operators' `CorporateAction.notices` (contract: "Delivery to channels")."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info

from domain.delivery import Delivery as LoggedDelivery
from queries import types as t
from queries.delivery_types import Delivery
from queries.paging import decode_cursor, encode_cursor, page_size

ACTION_NOTICE_CURSOR = "an"  # keyed by account id within one action


async def deliveries_of(info: Info[Any, Any], notice_id: str, version: int) -> list[Delivery]:
    """The deliveries of the notice's current version, one per planned channel."""
    deliveries = await info.context.services.deliveries.of_version(notice_id, version)
    return [delivery_view(d) for d in deliveries]


async def notices_of_action(
    info: Info[Any, Any], action_id: str, first: int | None, after: str | None
) -> t.DepositorNoticeConnection:
    from queries.views import depositor_notice

    services = info.context.services
    size = page_size(first)
    after_account = None if after is None else decode_cursor(after, ACTION_NOTICE_CURSOR, 1)[0]
    docs, has_next = await services.notices.page_for_action(action_id, size, after_account)
    total, _, _ = await info.context.loaders.notice_stats.load(action_id)
    edges = [
        t.DepositorNoticeEdge(
            cursor=encode_cursor(ACTION_NOTICE_CURSOR, str(doc["accountId"])),
            node=depositor_notice(doc),
        )
        for doc in docs
    ]
    return t.DepositorNoticeConnection(
        edges=edges,
        page_info=t.PageInfo(
            has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None
        ),
        total_count=total,
    )


def delivery_view(delivery: LoggedDelivery) -> Delivery:
    return Delivery(
        channel=delivery.channel,
        status=delivery.status,
        attempts=delivery.attempts,
        delivered_at=delivery.delivered_at,
        last_error=delivery.last_error,
        message_id=delivery.message_id,
    )

"""The projection of a depositor's acknowledgement onto their notice.

Part of the notices projection: the notices projector hands each
`NoticeAcknowledged` event here. The store's guard makes it idempotent and
ordered: a redelivery keeps the first time, and an acknowledgement of a
version the notice has since moved past (an update was issued) changes
nothing — the update is unread until acknowledged in its turn.
"""

from __future__ import annotations

import logging

from adapters.mongo.notices import MongoNoticeStore
from domain import events as ev

log = logging.getLogger(__name__)


async def apply_acknowledgement_event(store: MongoNoticeStore, event: ev.EventEnvelope) -> None:
    if event.event_type != ev.NOTICE_ACKNOWLEDGED:
        return
    notice_id = str(event.payload.get("noticeId", event.aggregate_id))
    notice_version = int(event.payload["noticeVersion"])
    applied = await store.apply_acknowledgement(notice_id, notice_version, event.occurred_at)
    if not applied:
        log.debug(
            "acknowledgement %s of notice %s v%d changed nothing (repeat or superseded)",
            event.event_id,
            notice_id,
            notice_version,
        )

"""Resolvers of `setNotificationPreferences` and `notificationPreferences`
(contract: "Delivery to channels"). The rules live in domain/preferences.py
and commands/preferences.py; this only translates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.types import Info

from domain.commands import CommandContext
from domain.consistency import PREFERENCES_PROJECTION
from domain.preferences import DeliveryChannel, may_read
from queries.consistency import wait_until_projected
from queries.context import HeraldContext
from queries.delivery_types import (
    NotificationPreferences,
    NotificationPreferencesInput,
    SetNotificationPreferencesPayload,
)

Ctx = Info[HeraldContext, None]


async def set_notification_preferences(
    info: Ctx, input: NotificationPreferencesInput
) -> SetNotificationPreferencesPayload:
    ctx = info.context
    payload = {
        "accountId": str(input.account_id),
        "channels": [c.value for c in input.channels],
        "email": input.email,
        "pushToken": input.push_token,
        "bic": input.bic,
    }
    result = await ctx.services.preference_handlers.set_preferences(
        payload, CommandContext(ctx.principal, ctx.correlation_id)
    )
    return SetNotificationPreferencesPayload(
        preferences=preferences_view(
            {**result.preferences.to_payload(), "updatedAt": result.updated_at}
        ),
        consistency_token=result.token.encode(),
    )


async def notification_preferences(
    info: Ctx, account_id: strawberry.ID, consistency_token: str | None = None
) -> NotificationPreferences | None:
    """Null when the account has none, or is not the caller's to read."""
    ctx = info.context
    if not may_read(ctx.principal, str(account_id)):
        return None
    await wait_until_projected(
        consistency_token,
        PREFERENCES_PROJECTION,
        ctx.services.consistency_waits,
        ctx.services.consistency_wait_seconds,
    )
    stored = await ctx.services.preferences.get(str(account_id))
    if stored is None:
        return None
    return preferences_view({**stored.preferences.to_payload(), "updatedAt": stored.updated_at})


def preferences_view(doc: Mapping[str, Any]) -> NotificationPreferences:
    updated_at: datetime = doc["updatedAt"]
    return NotificationPreferences(
        account_id=strawberry.ID(str(doc["accountId"])),
        channels=[DeliveryChannel(c) for c in doc.get("channels") or []],
        email=doc.get("email"),
        push_token=doc.get("pushToken"),
        bic=doc.get("bic"),
        updated_at=updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=UTC),
    )

"""GraphQL types of the delivery work: preferences and deliveries (contract:
"Delivery to channels"). Built from read models; no rules here."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.delivery import DeliveryStatus
from domain.preferences import DeliveryChannel

strawberry.enum(
    DeliveryChannel,
    name="DeliveryChannel",
    description="Outbound channels; the web/app inbox is always on and not listed.",
)
strawberry.enum(DeliveryStatus, name="DeliveryStatus")


@strawberry.input
class NotificationPreferencesInput:
    account_id: strawberry.ID
    channels: list[DeliveryChannel]
    email: str | None = None
    push_token: str | None = None
    bic: str | None = strawberry.field(default=None, description="ISO 9362; operators only.")


@strawberry.type(description="Where an account's notices go besides the inbox.")
class NotificationPreferences:
    account_id: strawberry.ID
    channels: list[DeliveryChannel]
    email: str | None
    push_token: str | None
    bic: str | None
    updated_at: datetime


@strawberry.type
class SetNotificationPreferencesPayload:
    preferences: NotificationPreferences
    consistency_token: str


@strawberry.type(description="One notice version on one channel.")
class Delivery:
    channel: DeliveryChannel
    status: DeliveryStatus
    attempts: int
    delivered_at: datetime | None
    last_error: str | None
    message_id: str | None = strawberry.field(
        description="The stable identity the channel carries: Message-ID, Idempotency-Key, SEME."
    )

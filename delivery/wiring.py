"""Which channels a process delivers through, from its settings: a channel
whose endpoint is not configured is off.

- EMAIL: `HERALD_SMTP_URL` (adapters/channels/email.py);
- PUSH: `HERALD_PUSH_URL` (adapters/channels/push.py);
- SWIFT: `HERALD_SWIFT_SENDER_BIC`, the depository's own BIC, publishing to
  `HERALD_SWIFT_TOPIC` on the event log's brokers (adapters/channels/swift.py).
  It reads the terms of the action version a notice was issued for from the
  event store, and loads python-iso20022's models (~3 s) on its first send,
  in a worker thread, so start-up does not wait for them.

The planner records deliveries for the channels returned here, and a
ChannelWorker drains each with its own breaker.
"""

from __future__ import annotations

from domain.ports import Channel, EventStore
from domain.preferences import DeliveryChannel
from settings import Settings, SettingsError


def delivered_at_issue(settings: Settings) -> bool:
    """HERALD_DELIVERED_AT_ISSUE: the deployment declares no outbound channel
    on any process, so every notice version goes nowhere outbound
    (`domain.delivery.plan_channels` plans none) and the notices projector
    stores it delivered at its issue, in the transaction that writes it; the
    planner has nothing to do for it (the decision rides in each
    `NoticeIssued` event).

    Declared, not inferred from this process's channels: the projectors and
    the delivery workers are often different processes, and a projector
    without the channels' settings would otherwise mark every notice
    delivered where a worker with them should send it (the SWIFT kill test
    found it). Raises SettingsError when declared beside a channel."""
    if not settings.delivered_at_issue:
        return False
    on = [
        name
        for name, value in (
            ("HERALD_SMTP_URL", settings.smtp_url),
            ("HERALD_PUSH_URL", settings.push_url),
            ("HERALD_SWIFT_SENDER_BIC", settings.swift_sender_bic),
        )
        if value
    ]
    if on:
        raise SettingsError(
            f"HERALD_DELIVERED_AT_ISSUE=true with an outbound channel on ({', '.join(on)}): "
            "notices would be marked delivered and never sent"
        )
    return True


def configured_channels(settings: Settings, events: EventStore) -> dict[DeliveryChannel, Channel]:
    from adapters.channels.email import SmtpChannel
    from adapters.channels.push import PushChannel

    channels: dict[DeliveryChannel, Channel] = {}
    if settings.smtp_url:
        channels[DeliveryChannel.EMAIL] = SmtpChannel(settings.smtp_url, settings.smtp_from)
    if settings.push_url:
        channels[DeliveryChannel.PUSH] = PushChannel(settings.push_url)
    if settings.swift_sender_bic:
        from adapters.channels.swift import SwiftChannel

        channels[DeliveryChannel.SWIFT] = SwiftChannel(
            settings.kafka_bootstrap,
            settings.swift_topic,
            settings.swift_sender_bic,
            events,
            idempotent=settings.kafka_idempotent_producer,
            partitions=settings.kafka_partitions,
        )
    return channels

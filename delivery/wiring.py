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
from settings import Settings


def delivered_at_issue(settings: Settings) -> bool:
    """No outbound channel is on: every notice version goes nowhere outbound
    (`domain.delivery.plan_channels` plans none, whatever the preferences),
    so the notices projector stores it delivered at its issue, in the
    transaction that writes it, and the planner has nothing to do for it.
    (Every process of a deployment shares these settings; the decision rides
    in each `NoticeIssued` event, so a planner configured otherwise still
    leaves those versions be.)"""
    return not (settings.smtp_url or settings.push_url or settings.swift_sender_bic)


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

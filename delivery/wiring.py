"""Which channels a process delivers through, from its settings: a channel
whose endpoint is not configured is off.

The SWIFT channel joins here as one more `domain.ports.Channel` adapter
(e.g. adapters/channels/swift.py, on when HERALD_SWIFT_TOPIC is set):

    channel = DeliveryChannel.SWIFT
    message_id(notice_id, version) -> seme_for(notice_id, version)
    send(message: OutboundNotice): build a SwiftNotice from `message.notice`
        (IssuedNotice: kind → NEWM/REPL/CANC, content, account), the BIC
        `message.address` and the SEME `message.message_id` (REPL/CANC name
        seme_for(notice_id, version - 1)); publish render_mt564(...) and
        render_seev031(...) to settings.swift_topic keyed by the SEME with a
        `format` header; a broker error raises TransientChannelError, a
        notice that cannot be rendered PermanentChannelError.
    close(): stop the producer.

Nothing else changes: the planner records SWIFT deliveries for accounts whose
preferences list SWIFT with a BIC, and a ChannelWorker drains them with its
own breaker."""

from __future__ import annotations

from domain.ports import Channel
from domain.preferences import DeliveryChannel
from settings import Settings


def configured_channels(settings: Settings) -> dict[DeliveryChannel, Channel]:
    from adapters.channels.email import SmtpChannel
    from adapters.channels.push import PushChannel

    channels: dict[DeliveryChannel, Channel] = {}
    if settings.smtp_url:
        channels[DeliveryChannel.EMAIL] = SmtpChannel(settings.smtp_url, settings.smtp_from)
    if settings.push_url:
        channels[DeliveryChannel.PUSH] = PushChannel(settings.push_url)
    return channels

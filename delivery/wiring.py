"""Which channels a process delivers through, from its settings: a channel
whose endpoint is not configured is off. The SWIFT channel joins here as one
more `domain.ports.Channel` adapter when its renderers land."""

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

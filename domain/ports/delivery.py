"""Delivery to channels (contract: "Delivery to channels"): the channels,
the delivery log, preferences."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.delivery import ClaimedDelivery, Delivery, OutboundNotice, Outcome
from domain.preferences import DeliveryChannel, Preferences


class ChannelError(Exception):
    """A channel could not deliver a message. `transient`: worth retrying
    (timeouts, 408/429/5xx, a refused connection); otherwise permanent (the
    receiver rejected this message: retrying it unchanged cannot succeed)."""

    transient: bool = True


class TransientChannelError(ChannelError):
    transient = True


class PermanentChannelError(ChannelError):
    transient = False


class Channel(Protocol):
    """One outbound channel (e-mail, push, SWIFT).

    `message_id(notice_id, version)` is the stable downstream identity of a
    notice version on this channel (Message-ID, Idempotency-Key, SEME): the
    same on every call, so a re-send after a crash is recognisable. `send`
    delivers one message carrying `message.message_id`, returning normally
    only when the receiver accepted it; it raises TransientChannelError or
    PermanentChannelError, never anything else for a delivery failure.
    """

    channel: DeliveryChannel

    def message_id(self, notice_id: str, version: int) -> str: ...

    async def send(self, message: OutboundNotice) -> None: ...

    async def close(self) -> None: ...


class DeliveryLog(Protocol):
    """The dispatcher's record of what goes out: one delivery per (notice,
    version, channel), recorded before any call and drained by the channel
    workers (delivery/). Exactly once: `plan` records each delivery once;
    `claim` counts an attempt and leases the delivery before the call;
    `record` stores the outcome after it. A lease that runs out (a worker
    died between the two) makes the delivery due again, re-sent under the
    same message id."""

    async def plan(self, outbound: Sequence[OutboundNotice], now: datetime) -> int:
        """Record the deliveries not recorded yet (PENDING, due `now`); returns
        how many were new. One already recorded stays as it is."""
        ...

    async def earlier_channels(
        self, versions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[DeliveryChannel, str]]:
        """For each (notice, version): the channels earlier versions were
        planned on and not dead-lettered, with the address the latest used."""
        ...

    async def due(self, channel: DeliveryChannel, now: datetime, limit: int) -> list[str]:
        """Keys of up to `limit` open deliveries of `channel` due by `now` and
        not leased, the longest due first."""
        ...

    async def claim(
        self, keys: Sequence[str], now: datetime, lease: timedelta
    ) -> list[ClaimedDelivery]:
        """Of `keys`, those still due and not leased: count an attempt on each
        and lease it to this caller until `now + lease`."""
        ...

    async def record(self, outcomes: Sequence[Outcome]) -> set[str]:
        """Store the outcomes of claimed deliveries (a DELIVERED one stays
        delivered); returns the keys recorded as delivered."""
        ...

    async def unsettled(self, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` (notice, version)s with a delivery delivered whose
        notice-level outcome is not recorded yet (not settled)."""
        ...

    async def settle(self, keys: Sequence[str]) -> None:
        """The notice-level outcome of these deliveries is recorded."""
        ...

    async def of_version(self, notice_id: str, version: int) -> list[Delivery]:
        """The deliveries of one notice version, by channel."""
        ...

    async def of_notices(
        self, versions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Delivery]]:
        """The deliveries of each (notice, version), by channel."""
        ...

    async def dead_letters(self, channel: DeliveryChannel | None = None) -> list[Delivery]:
        """Dead-lettered deliveries (of `channel`; all: None), by channel and key."""
        ...

    async def requeue(self, key: str, address: str | None, now: datetime) -> bool:
        """Put a dead letter back in its channel's queue with fresh attempts
        (at `address` when given); False when it is not dead-lettered."""
        ...


@dataclass(frozen=True)
class StoredPreferences:
    """An account's preferences as stored: the state, its stream version,
    when it was set."""

    preferences: Preferences
    version: int
    updated_at: datetime


class PreferenceStore(Protocol):
    """The notification preferences read model (written by the preferences
    projector), with each account's recent history: the dispatcher plans a
    notice version from the preferences in force when it was issued."""

    async def save(
        self, preferences: Preferences, version: int, sequence: int, updated_at: datetime
    ) -> bool:
        """Store stream `version` of the account's preferences, set at global
        `sequence`; False when that version or a newer one is stored."""
        ...

    async def get(self, account_id: str) -> StoredPreferences | None:
        """The account's current preferences, or None."""
        ...

    async def current(self, account_ids: Collection[str]) -> dict[str, Preferences]:
        """The current preferences of those of `account_ids` that have any."""
        ...

    async def in_force(
        self, wanted: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], Preferences]:
        """For each (account, global sequence): the preferences in force at
        that point of the log (the latest set at or before it; a sequence of 0
        or less: the current ones). Absent: none were set by then."""
        ...


class NoticeDeliveryMarks(Protocol):
    """What the dispatcher writes to the notices read model."""

    async def mark_delivered(self, versions: Sequence[tuple[str, int]], at: datetime) -> int:
        """Every chosen channel delivered these (notice, version)s (or they had
        none): set each notice's `deliveredAt` (and its action's delivered
        count) while it is still at that version and not yet marked. Returns
        how many notices were marked."""
        ...

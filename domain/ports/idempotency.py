"""Idempotency-Key records (RFC draft-ietf-httpapi-idempotency-key-header)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.idempotency import IdempotencyRecord, StoredResponse


class IdempotencyStore(Protocol):
    """Where Idempotency-Keys are claimed and responses recorded; raises
    StoreError when down."""

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Store `record` as in flight unless its key is held: None when claimed,
        else the record that holds the key."""
        ...

    async def take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        """Replace `held` by `record` (in flight) if `held` is still what is stored
        (or `record` already is: a resent takeover). Taking over an in-flight
        (abandoned) claim ends it first: False if its completion or release
        ended it before."""
        ...

    async def complete(
        self, record: IdempotencyRecord, response: StoredResponse, expires_at: datetime
    ) -> bool:
        """Record the response of `record`'s claim, the key then kept until
        `expires_at`; False if the claim had ended (completed, released, or
        taken over as abandoned): a claim's first end is its only one. Not
        called for a claim whose command stored its event (`StoredCommands`):
        that claim stays in flight, answered from the event."""
        ...

    async def release(self, record: IdempotencyRecord) -> None:
        """End `record`'s claim as released unless it had ended, keeping its
        command id, so that a retry runs — or finds what the command stored."""
        ...


class StoredCommands(Protocol):
    """Whether a command (an Idempotency-Key's one execution) stored its
    event: then that event is the key's record, and a repeat of the request
    is answered by rebuilding the first answer from it. Raises StoreError."""

    async def stored(self, command_id: str) -> bool: ...

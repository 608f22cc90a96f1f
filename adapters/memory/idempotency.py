"""MemoryIdempotencyStore: the IdempotencyStore port in a dict, with the Mongo
adapter's conditions (a claim, takeover, completion or release acts only on
the claim and state it names). Nothing expires: the store has no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse


def _state(record: IdempotencyRecord) -> str:
    if record.released:
        return "released"
    return "in_flight" if record.in_flight else "completed"


class MemoryIdempotencyStore:
    """Idempotency-Key records of one process (tests and the unit suites)."""

    def __init__(self) -> None:
        self._records: dict[CallerKey, IdempotencyRecord] = {}

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        held = self._records.setdefault(record.caller_key, record)
        return None if held.claim_id == record.claim_id else held

    async def take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        stored = self._records.get(held.caller_key)
        if stored is not None and stored.claim_id == record.claim_id:
            return True  # a resent takeover of ours
        if stored is None or (stored.claim_id, _state(stored)) != (held.claim_id, _state(held)):
            return False
        self._records[held.caller_key] = replace(record, response=None, released=False)
        return True

    async def complete(
        self, record: IdempotencyRecord, response: StoredResponse, expires_at: datetime
    ) -> bool:
        stored = self._in_flight_claim(record)
        if stored is None:
            return False
        self._records[record.caller_key] = replace(stored, response=response, expires_at=expires_at)
        return True

    async def release(self, record: IdempotencyRecord) -> None:
        stored = self._in_flight_claim(record)
        if stored is not None:
            self._records[record.caller_key] = replace(stored, released=True)

    def _in_flight_claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        stored = self._records.get(record.caller_key)
        if stored is None or stored.claim_id != record.claim_id or not stored.in_flight:
            return None
        return stored

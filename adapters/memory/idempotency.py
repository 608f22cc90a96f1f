"""MemoryIdempotencyStore: the IdempotencyStore port in dicts, with the Mongo
adapter's rules: a claim per key, taken over only by a takeover that names
the claim and state it read; a claim ended once, by its response, its
release or its takeover as abandoned (the first end stands); a claim whose
command stored its event is never ended (the event is its record). Nothing
expires: the store has no clock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse


@dataclass(frozen=True)
class _End:
    """What ended a claim: its response (with the key's new expiry), its
    release, or neither (the mark of its takeover as abandoned)."""

    response: StoredResponse | None = None
    expires_at: datetime | None = None
    released: bool = False


_ABANDONED = _End()


def _state(record: IdempotencyRecord) -> str:
    if record.released:
        return "released"
    return "in_flight" if record.in_flight else "completed"


class MemoryIdempotencyStore:
    """Idempotency-Key records of one process (tests and the unit suites)."""

    def __init__(self) -> None:
        self._claims: dict[CallerKey, IdempotencyRecord] = {}
        self._ends: dict[tuple[CallerKey, str], _End] = {}

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        held = self._claims.setdefault(record.caller_key, record)
        return None if held.claim_id == record.claim_id else self._read(held)

    async def take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        stored = self._claims.get(held.caller_key)
        if stored is not None and stored.claim_id == record.claim_id:
            return True  # a resent takeover of ours
        if stored is None or stored.claim_id != held.claim_id:
            return False
        if _state(self._read(stored)) != _state(held):
            return False  # completed or released since it was read
        self._ends.setdefault((held.caller_key, held.claim_id), _ABANDONED)
        self._claims[held.caller_key] = replace(record, response=None, released=False)
        return True

    async def complete(
        self, record: IdempotencyRecord, response: StoredResponse, expires_at: datetime
    ) -> bool:
        return self._end(record, _End(response, expires_at))

    async def release(self, record: IdempotencyRecord) -> None:
        self._end(record, _End(released=True))

    def _end(self, record: IdempotencyRecord, end: _End) -> bool:
        ended = self._ends.setdefault((record.caller_key, record.claim_id), end)
        return ended is end

    def _read(self, claim: IdempotencyRecord) -> IdempotencyRecord:
        end = self._ends.get((claim.caller_key, claim.claim_id))
        if end is None or end is _ABANDONED:
            return claim
        if end.response is not None and end.expires_at is not None:
            return replace(claim, response=end.response, expires_at=end.expires_at)
        return replace(claim, released=end.released)

"""Depositors' positions in one security at one date, as the tax agent reports them."""

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from domain.money import canonical_string
from domain.readers import (
    InvalidInput,
    Problem,
    Problems,
    read_date,
    read_decimal,
    read_isin,
    read_list,
    read_object,
    read_text,
    reject_unknown_keys,
)

__all__ = [
    "MAX_QUANTITY",
    "ChunkBoundaries",
    "Position",
    "PositionsSnapshot",
    "parse_positions",
    "positions_to_payload",
]

# Account ids are opaque; 64 characters is ample and bounds storage and tokens.
MAX_ACCOUNT_ID_CHARS: Final = 64
# A holding is below 10^15 securities (15 whole digits). The largest share
# issues are around 10^13 (before its 2024 consolidation VTB had 1.3 x 10^13
# shares), so an omnibus account fits with room to spare. The bound keeps
# every figure derived from a holding exact and small: a cash entitlement
# stays far inside domain.money.EXACT's precision, and new securities
# (quantity x numerator / denominator, numerator < 2^31) stay below 2.2 x 10^24
# -- beyond MongoDB's 8-byte integers, which is why notices store them as
# decimal strings and the API carries them as BigInt.
MAX_QUANTITY: Final = Decimal(10) ** 15
_SNAPSHOT_KEYS: Final = frozenset({"isin", "asOf", "positions"})
_POSITION_KEYS: Final = frozenset({"accountId", "quantity", "taxRatePercent"})


@dataclass(frozen=True)
class Position:
    """One account's holding; the tax rate is in percent (13, not 0.13)."""

    account_id: str
    quantity: Decimal
    tax_rate_percent: Decimal


@dataclass(frozen=True)
class PositionsSnapshot:
    """All positions of an ISIN at the end of `as_of`, in the order given."""

    isin: str
    as_of: date
    positions: tuple[Position, ...]


def parse_positions(payload: Mapping[str, object]) -> PositionsSnapshot:
    """Validate a RecordPositionsInput-shaped payload, reporting every problem.

    quantity: plain decimal, 0 <= quantity < MAX_QUANTITY (fractional units
    allowed); taxRatePercent: plain decimal from 0 to 100; accountId: 1-64
    characters, unique in the snapshot (a repeat is reported at the later
    entry). Values come back in canonical form (domain.validation): "40.000"
    is 40, " ACC-1" is "ACC-1", so a corrected snapshot that means the same
    is the same. An empty list is a valid snapshot: nobody holds the security.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput([Problem((), "must be an object")])
    problems = Problems()
    reject_unknown_keys(payload, _SNAPSHOT_KEYS, (), problems)
    isin = read_isin(payload.get("isin"), ("isin",), problems)
    as_of = read_date(payload.get("asOf"), ("asOf",), problems, required=True)
    raw_positions = payload.get("positions")
    if raw_positions is None:
        problems.add(("positions",), "is required")
    positions: list[Position] = []
    seen: set[str] = set()
    for index, item in enumerate(read_list(raw_positions, ("positions",), problems)):
        path = ("positions", index)
        obj = read_object(item, path, problems, _POSITION_KEYS, required=True)
        if obj is None:
            continue
        account_id = read_text(
            obj.get("accountId"),
            (*path, "accountId"),
            problems,
            max_chars=MAX_ACCOUNT_ID_CHARS,
            required=True,
        )
        if account_id is not None:
            if account_id in seen:
                problems.add((*path, "accountId"), f"account {account_id} is listed twice")
            seen.add(account_id)
        quantity = read_decimal(obj.get("quantity"), (*path, "quantity"), problems)
        if quantity is not None and not 0 <= quantity < MAX_QUANTITY:
            problems.add(
                (*path, "quantity"),
                "must not be negative" if quantity < 0 else "must be less than 10^15",
            )
            quantity = None
        tax_rate = read_decimal(obj.get("taxRatePercent"), (*path, "taxRatePercent"), problems)
        if tax_rate is not None and not 0 <= tax_rate <= 100:
            problems.add((*path, "taxRatePercent"), "must be between 0 and 100")
        if account_id is not None and quantity is not None and tax_rate is not None:
            positions.append(Position(account_id, quantity, tax_rate))
    problems.raise_if_any()
    assert isin is not None and as_of is not None
    return PositionsSnapshot(isin, as_of, tuple(positions))


def positions_to_payload(snapshot: PositionsSnapshot) -> dict[str, object]:
    """The JSON-compatible payload of `snapshot` (inverse of parse_positions),
    decimals in canonical form."""
    return {
        "isin": snapshot.isin,
        "asOf": snapshot.as_of.isoformat(),
        "positions": [
            {
                "accountId": p.account_id,
                "quantity": canonical_string(p.quantity),
                "taxRatePercent": canonical_string(p.tax_rate_percent),
            }
            for p in snapshot.positions
        ],
    }


def positions_aggregate_id(isin: str, as_of: str) -> str:
    """The stream of snapshots of one security at one date."""
    return f"{isin}:{as_of}"


SAMPLES_PER_CHUNK: Final = 8


class ChunkBoundaries:
    """Boundaries that cut account ids, seen once each in any order, into
    chunks of about `every`, in O(ids / every) memory.

    An account id is kept when its CRC-32 falls in one residue class of
    `every / 8`; every 8th kept id (sorted) starts a chunk, after "" (below
    every id). So a chunk holds about `every` accounts (the gap between kept
    ids is geometric: a chunk is the sum of 8, ±35 %), the pass needs no sort —
    a sorted pass over a million positions kept SecantusDB busy 38 s before
    its first answer, past the client's socket timeout — and the same ids
    always give the same boundaries. With `every` ≤ 8 every id is kept and
    the chunks are exact."""

    def __init__(self, every: int) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self._per_chunk = min(SAMPLES_PER_CHUNK, every)
        self._modulus = max(1, every // self._per_chunk)
        self._kept: set[str] = set()
        self.seen = 0

    def see(self, account_id: str) -> None:
        self.seen += 1
        if self._modulus == 1 or zlib.crc32(account_id.encode()) % self._modulus == 0:
            self._kept.add(account_id)

    def boundaries(self) -> list[str]:
        """Sorted, "" first; empty when no id was seen."""
        if not self.seen:
            return []
        return ["", *sorted(self._kept)[self._per_chunk :: self._per_chunk]]

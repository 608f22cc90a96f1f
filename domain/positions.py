"""Depositors' positions in one security at one date, as the tax agent reports them."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from domain.money import to_plain_string
from domain.validation import (
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

__all__ = ["Position", "PositionsSnapshot", "parse_positions", "positions_to_payload"]

# Account ids are opaque; 64 characters is ample and bounds storage and tokens.
MAX_ACCOUNT_ID_CHARS: Final = 64
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

    quantity: plain decimal >= 0 (fractional units allowed); taxRatePercent:
    plain decimal from 0 to 100; accountId: 1-64 characters, unique in the
    snapshot (a repeat is reported at the later entry). An empty list is a
    valid snapshot: nobody holds the security.
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
        if quantity is not None and quantity < 0:
            problems.add((*path, "quantity"), "must not be negative")
        tax_rate = read_decimal(obj.get("taxRatePercent"), (*path, "taxRatePercent"), problems)
        if tax_rate is not None and not 0 <= tax_rate <= 100:
            problems.add((*path, "taxRatePercent"), "must be between 0 and 100")
        if account_id is not None and quantity is not None and tax_rate is not None:
            positions.append(Position(account_id, quantity, tax_rate))
    problems.raise_if_any()
    assert isin is not None and as_of is not None
    return PositionsSnapshot(isin, as_of, tuple(positions))


def positions_to_payload(snapshot: PositionsSnapshot) -> dict[str, object]:
    """The JSON-compatible payload of `snapshot` (inverse of parse_positions)."""
    return {
        "isin": snapshot.isin,
        "asOf": snapshot.as_of.isoformat(),
        "positions": [
            {
                "accountId": p.account_id,
                "quantity": to_plain_string(p.quantity),
                "taxRatePercent": to_plain_string(p.tax_rate_percent),
            }
            for p in snapshot.positions
        ],
    }


def positions_aggregate_id(isin: str, as_of: str) -> str:
    """The stream of snapshots of one security at one date."""
    return f"{isin}:{as_of}"

"""Relay paging shared by the connections: page size and opaque keyset cursors.

A cursor names the position of the last item seen (its sort key), never an
offset, so it stays valid while new items arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from queries.errors import BAD_USER_INPUT, coded

MAX_PAGE = 100
DEFAULT_PAGE = 20

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def page_size(first: int | None) -> int:
    size = DEFAULT_PAGE if first is None else first
    if size < 0 or size > MAX_PAGE:
        raise coded(f"first must be between 0 and {MAX_PAGE}", BAD_USER_INPUT, field="first")
    return size


def encode_cursor(kind: str, *key: str) -> str:
    """An opaque cursor for the item whose sort key is `key` in a `kind` list."""
    raw = json.dumps([kind, *key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str, kind: str, arity: int) -> tuple[str, ...]:
    """The sort key of a cursor `encode_cursor(kind, …)` issued; else BAD_USER_INPUT."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeError, binascii.Error):
        data = None
    if (
        not isinstance(data, list)
        or len(data) != arity + 1
        or data[0] != kind
        or not all(isinstance(part, str) for part in data)
    ):
        raise coded("after: not a cursor this API issued", BAD_USER_INPUT, field="after")
    return tuple(data[1:])


def instant_key(at: datetime) -> str:
    """A datetime as a cursor part: whole milliseconds since the epoch (the
    store's precision), so the round trip is exact."""
    if at.tzinfo is None:  # the store's naive datetimes are UTC
        at = at.replace(tzinfo=UTC)
    return str((at - _EPOCH) // _MILLISECOND)


def instant_from_key(key: str) -> datetime:
    try:
        return _EPOCH + int(key) * _MILLISECOND
    except (ValueError, OverflowError) as exc:
        raise coded("after: not a cursor this API issued", BAD_USER_INPUT, field="after") from exc

"""Identifiers Herald assigns."""

from __future__ import annotations

import os
import time
import uuid

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_action_id() -> str:
    """A ULID-style id (48-bit milliseconds + 80 random bits, Crockford base32).

    Time-ordered, so the card list can page newest-first by id with cursors
    that stay valid while new cards arrive.
    """
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "CA" + "".join(reversed(chars))


def new_event_id() -> str:
    return str(uuid.uuid4())


def new_correlation_id() -> str:
    return uuid.uuid4().hex

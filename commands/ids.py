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


# Ids derived from a command id (an Idempotency-Key's one execution): writing
# them again is "already written", never a second record.
_COMMAND_NAMESPACE = uuid.UUID("6f1c2a52-8a0e-4f43-9a57-3c1f0f7d2b11")


def command_event_id(command_id: str, index: int = 0) -> str:
    """The id of the `index`-th event the command `command_id` records."""
    return str(uuid.uuid5(_COMMAND_NAMESPACE, f"{command_id}/event/{index}"))


def command_snapshot_id(command_id: str) -> str:
    """The id of the positions snapshot the command `command_id` stores."""
    return str(uuid.uuid5(_COMMAND_NAMESPACE, f"{command_id}/snapshot"))

"""Consistency tokens: where in the event record a command's last event stands.

A mutation returns one; a query given it back waits until the projections it
reads have applied that event. The token is opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass


class MalformedToken(ValueError):
    pass


@dataclass(frozen=True)
class ConsistencyToken:
    aggregate_type: str
    aggregate_id: str
    version: int
    sequence: int

    def encode(self) -> str:
        raw = json.dumps(
            [1, self.aggregate_type, self.aggregate_id, self.version, self.sequence],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> ConsistencyToken:
        try:
            padded = text + "=" * (-len(text) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            tag, aggregate_type, aggregate_id, version, sequence = data
            if tag != 1 or not all(isinstance(x, str) for x in (aggregate_type, aggregate_id)):
                raise ValueError("unknown token format")
            if not (isinstance(version, int) and isinstance(sequence, int)):
                raise ValueError("unknown token format")
            return cls(aggregate_type, aggregate_id, version, sequence)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise MalformedToken("consistencyToken is not one Herald issued") from exc

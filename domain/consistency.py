"""Consistency tokens: where in the event record a command's last event stands.

A mutation returns one; a query given it back waits until the projections it
reads have applied that event. The token is opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from domain.events import (
    AGGREGATE_CORPORATE_ACTION,
    AGGREGATE_NOTICE,
    AGGREGATE_NOTICE_ISSUE,
    AGGREGATE_POSITIONS,
    AGGREGATE_PREFERENCES,
)

# The read models' projections, by the name their progress is recorded under.
CARDS_PROJECTION = "cards"
NOTICES_PROJECTION = "notices"
PREFERENCES_PROJECTION = "preferences"

# The event streams (aggregate types) each projection follows — its topics. A
# token names the last event of one stream; only a projection that follows
# that stream records its versions, so only such a projection can be waited on.
PROJECTION_STREAMS: Mapping[str, frozenset[str]] = {
    CARDS_PROJECTION: frozenset({AGGREGATE_CORPORATE_ACTION}),
    NOTICES_PROJECTION: frozenset(
        {AGGREGATE_CORPORATE_ACTION, AGGREGATE_POSITIONS, AGGREGATE_NOTICE}
    ),
    PREFERENCES_PROJECTION: frozenset({AGGREGATE_PREFERENCES}),
    "dispatcher": frozenset({AGGREGATE_NOTICE_ISSUE}),
}


class MalformedToken(ValueError):
    pass


@dataclass(frozen=True)
class ConsistencyToken:
    aggregate_type: str
    aggregate_id: str
    version: int
    sequence: int

    def awaited_by(self, projection: str) -> bool:
        """True when `projection` must have applied this token's event before a
        read answers; False when it does not follow the token's stream (e.g. a
        positions token read back on the cards projection): nothing to wait for.
        An unknown projection name waits, so a new projection fails safe."""
        streams = PROJECTION_STREAMS.get(projection)
        return streams is None or self.aggregate_type in streams

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

"""The records of Idempotency-Key claims (invariant 3), in Herald's terms.

The port that stores them is `domain.ports.IdempotencyStore`; the HTTP
middleware that claims keys is `web.idempotency`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from domain.events import CommandOrigin

__all__ = ["CallerKey", "IdempotencyRecord", "StoredResponse"]


@dataclass(frozen=True)
class CallerKey:
    """An Idempotency-Key in the scope of its caller (None: no token)."""

    subject: str | None
    key: str

    @property
    def scoped(self) -> str:
        """The key in its caller's scope, unambiguous for any subject (a JSON
        pair; no token is null, not a name)."""
        return json.dumps([self.subject, self.key], separators=(",", ":"))


@dataclass(frozen=True)
class StoredResponse:
    """A recorded answer: HTTP status, the headers replayed with it (lower-case
    names), the body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class IdempotencyRecord:
    """One claim of a key; `claim_id` tells this claim from a later takeover.

    `command_id` names the one execution of the key's command: a takeover of
    an abandoned or released claim of the same body keeps it. `released`: the
    claim ended in a server failure; the key is free, its command id kept.
    """

    caller_key: CallerKey
    fingerprint: str
    claim_id: str
    claimed_at: datetime
    expires_at: datetime
    response: StoredResponse | None = None
    command_id: str = field(default_factory=_new_id)
    released: bool = False

    @property
    def in_flight(self) -> bool:
        return self.response is None and not self.released

    def origin(self) -> CommandOrigin:
        return CommandOrigin(self.command_id, self.caller_key.scoped, self.fingerprint)

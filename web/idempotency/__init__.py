"""The Idempotency-Key check: the same key executes a mutation once.

- `middleware.py`: IdempotencyMiddleware — claims the key, decides (run,
  resume, replay, refuse) and records the answer; the semantics are told there.
- `requests.py`: what it reads of a request (mutation or not, the key, the
  fingerprint of the canonical body).
- `responses.py`: what of a response is recorded, and its replay.
- `problems.py`: the RFC 9457 problems it answers with.
- `websocket.py`: mutations over the GraphQL WebSocket are refused.
"""

from web.idempotency.middleware import IdempotencyMiddleware
from web.idempotency.requests import (
    MAX_KEY_LENGTH,
    InvalidIdempotencyKey,
    idempotency_key,
    is_mutation_request,
    mutation_field_count,
    request_fingerprint,
)
from web.idempotency.responses import is_server_failure

__all__ = [
    "MAX_KEY_LENGTH",
    "IdempotencyMiddleware",
    "InvalidIdempotencyKey",
    "idempotency_key",
    "is_mutation_request",
    "is_server_failure",
    "mutation_field_count",
    "request_fingerprint",
]

"""The RFC 9457 problems the Idempotency-Key check answers with (their type
URIs and codes are the edge's too: edge/config.py)."""

from __future__ import annotations

import math

from queries.errors import (
    BAD_USER_INPUT,
    IDEMPOTENCY_KEY_REUSED,
    REQUEST_IN_PROGRESS,
    SERVICE_UNAVAILABLE,
)
from web.problems import Problem, malformed

__all__ = [
    "in_progress",
    "key_invalid",
    "key_missing",
    "key_reused",
    "several_mutations",
    "store_unavailable",
    "too_deep",
    "too_large",
]


def key_missing(detail: str) -> Problem:
    return Problem(
        400,
        "idempotency-key-missing",
        "Idempotency-Key required",
        detail,
        "IDEMPOTENCY_KEY_MISSING",
    )


def key_invalid(detail: str) -> Problem:
    return Problem(
        400, "idempotency-key-invalid", "Invalid Idempotency-Key", detail, "IDEMPOTENCY_KEY_INVALID"
    )


def key_reused() -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "this Idempotency-Key was already used with a different request body",
        IDEMPOTENCY_KEY_REUSED,
    )


def in_progress(retry_after: int) -> Problem:
    """409; `retry_after`: whole seconds (>= 1) to wait before a retry (the
    middleware gives about as long as the claim has run, at most until its
    lease ends, when a retry takes an abandoned claim over)."""
    return Problem(
        409,
        "request-in-progress",
        "Request in progress",
        "a request with this Idempotency-Key is still being processed; retry later",
        REQUEST_IN_PROGRESS,
        ((b"retry-after", str(max(1, retry_after)).encode()),),
    )


def several_mutations() -> Problem:
    return Problem(
        400,
        "one-mutation-per-key",
        "One mutation per Idempotency-Key",
        "a request under an Idempotency-Key selects exactly one mutation field; send each "
        "mutation as a request of its own, with its own key (nothing was executed)",
        BAD_USER_INPUT,
    )


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "request-too-large",
        "Request body too large",
        f"the request body is larger than {limit} bytes",
        "REQUEST_TOO_LARGE",
    )


def too_deep() -> Problem:
    return malformed("the request body is JSON nested too deeply to read")


def store_unavailable(lease_seconds: float) -> Problem:
    """503; `lease_seconds`: the claim lease (HERALD_IDEMPOTENCY_LEASE_SECONDS)
    a claim this request may have left holds the key for."""
    lease = math.ceil(lease_seconds)
    return Problem(
        503,
        "idempotency-unavailable",
        "Service unavailable",
        "the Idempotency-Key cannot be checked right now; nothing was executed, retry later. "
        "The store may have kept this request's claim of the key: a retry with the same key "
        f"may then answer 409 (request in progress) until the claim's lease of {lease} s ends "
        "(its Retry-After says how long is left)",
        SERVICE_UNAVAILABLE,
    )

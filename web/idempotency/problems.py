"""The RFC 9457 problems the Idempotency-Key check answers with (their type
URIs and codes are the edge's too: edge/config.py)."""

from __future__ import annotations

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


def in_progress() -> Problem:
    return Problem(
        409,
        "request-in-progress",
        "Request in progress",
        "a request with this Idempotency-Key is still being processed; retry later",
        REQUEST_IN_PROGRESS,
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


def store_unavailable() -> Problem:
    return Problem(
        503,
        "idempotency-unavailable",
        "Service unavailable",
        "the Idempotency-Key cannot be checked right now; nothing was executed, retry later",
        SERVICE_UNAVAILABLE,
    )

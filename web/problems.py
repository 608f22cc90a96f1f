"""HTTP-level refusals as RFC 9457 problem details (`application/problem+json`).

Every refusal of the /graphql endpoint that is not a GraphQL answer — a body
that cannot be read, a missing Idempotency-Key, a key reused — is one
`Problem`: `type` (a URI under `PROBLEM_TYPE_BASE`), `title`, `status`,
`detail` (what is wrong, for a person) and `code` (the contract's error code,
for a program). The nginx edge (edge/config.py) answers with the same type
URIs, built from the same base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus

from starlette.types import Send

from web.asgi import send_response

__all__ = [
    "BAD_REQUEST",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_BASE",
    "Problem",
    "malformed",
    "problem_type",
    "send_problem",
]

PROBLEM_TYPE_BASE = "https://herald.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
BAD_REQUEST = "BAD_REQUEST"
# Refusals a retry may clear: the client is told when to come back.
_RETRY_LATER = frozenset({HTTPStatus.CONFLICT, HTTPStatus.SERVICE_UNAVAILABLE})


def problem_type(slug: str) -> str:
    """The problem type URI of `slug` (e.g. "idempotency-key-reused")."""
    return PROBLEM_TYPE_BASE + slug


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem detail, answered as `application/problem+json`."""

    status: int
    slug: str
    title: str
    detail: str
    code: str
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def type(self) -> str:
        return problem_type(self.slug)

    def body(self) -> bytes:
        return json.dumps(
            {
                "type": self.type,
                "title": self.title,
                "status": self.status,
                "detail": self.detail,
                "code": self.code,
            }
        ).encode()

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers but the length: the content type, Retry-After
        for 409/503 (1 s unless `extra_headers` give their own), and the
        problem's own (`extra_headers`)."""
        headers = [(b"content-type", PROBLEM_CONTENT_TYPE.encode())]
        own = {name.lower() for name, _ in self.extra_headers}
        if self.status in _RETRY_LATER and b"retry-after" not in own:
            headers.append((b"retry-after", b"1"))
        return [*headers, *self.extra_headers]


def malformed(detail: str) -> Problem:
    """400: the request cannot be read as a GraphQL request (`detail` says why)."""
    return Problem(400, "request-malformed", "Malformed request", detail, BAD_REQUEST)


async def send_problem(send: Send, problem: Problem) -> None:
    """Answer `problem` on an ASGI `send`."""
    await send_response(send, problem.status, problem.headers(), problem.body())

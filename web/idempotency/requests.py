"""What the Idempotency-Key check reads of a request: whether it is a
mutation (and how many mutation fields it selects), its key, and the
fingerprint of its canonical body. Pure functions of the request."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    parse,
)

from queries.documents import MAX_TOKENS, operation_type
from web.idempotency.problems import key_invalid, key_missing
from web.problems import Problem

__all__ = [
    "HEADER",
    "MAX_KEY_LENGTH",
    "InvalidIdempotencyKey",
    "idempotency_key",
    "is_mutation_request",
    "json_or_none",
    "mutation_field_count",
    "request_fingerprint",
]

MAX_KEY_LENGTH = 255
HEADER = b"idempotency-key"


class InvalidIdempotencyKey(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def idempotency_key(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The request's Idempotency-Key, or InvalidIdempotencyKey naming what is wrong."""
    values = [value for name, value in headers if name.lower() == HEADER]
    if not values or values == [b""]:
        raise InvalidIdempotencyKey(
            key_missing("a mutation must carry an Idempotency-Key header (1-255 characters)")
        )
    if len(values) > 1:
        raise InvalidIdempotencyKey(key_invalid("send exactly one Idempotency-Key header"))
    raw = values[0]
    if len(raw) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            key_invalid(f"the Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
        )
    if not all(0x21 <= byte <= 0x7E for byte in raw):
        raise InvalidIdempotencyKey(
            key_invalid("the Idempotency-Key must be visible ASCII characters only")
        )
    return raw.decode("ascii")


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """sha256 of the canonical request: whitespace and key order in the JSON body
    do not matter, any difference in value (variables included) does."""
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def is_mutation_request(body: Any) -> bool:
    """True when the GraphQL request body (or any request of a batch) selects a
    mutation. A request whose operation cannot be determined is not one: the
    GraphQL layer uses the same parser and refuses it without executing."""
    if isinstance(body, list):
        return any(is_mutation_request(item) for item in body)
    if not isinstance(body, dict):
        return False
    query = body.get("query")
    operation_name = body.get("operationName")
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return False
    return operation_type(query, operation_name) is OperationType.MUTATION


def mutation_field_count(body: Any) -> int:
    """How many mutation fields the request (or all requests of a batch) selects
    at the root, aliases and fragments counted; `__typename` is not a mutation."""
    if isinstance(body, list):
        return sum(mutation_field_count(item) for item in body)
    if not isinstance(body, dict):
        return 0
    query = body.get("query")
    operation_name = body.get("operationName")
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return 0
    return _root_mutation_fields(query, operation_name)


@lru_cache(maxsize=256)
def _root_mutation_fields(query: str, operation_name: str | None) -> int:
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        return 0  # the GraphQL layer refuses it without executing
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return 0
    fragments = {
        d.name.value: d.selection_set
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }

    def count(selection_set: SelectionSetNode, seen: frozenset[str]) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += selection.name.value != "__typename"
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:  # a cycle fails validation
                    total += count(fragments[name], seen | {name})
        return total

    return count(operation.selection_set, frozenset())


def json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # not JSON: the GraphQL layer refuses it without executing
        return None

"""GraphQL documents read before they run, by the HTTP layer: is this request
a mutation (idempotency), a public card read (the public cache), a
subscription sent by POST (refused)?

Each distinct document is parsed once and kept (LRU) — clients send the same
few documents over and over, and parsing costs more than the answer from
the public cache. The parse has the schema's token limit, so a huge
document costs no more here than the schema lets it; a document larger than
`MAX_CACHED_CHARS` is parsed every time rather than kept, so the cache's
memory stays bounded whatever is sent.
"""

from __future__ import annotations

from functools import lru_cache

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.utilities import get_operation_ast

__all__ = [
    "DOCUMENT_CACHE_SIZE",
    "MAX_TOKENS",
    "operation_type",
    "selected_operation",
]

MAX_TOKENS = 5000  # the schema refuses longer documents (MaxTokensLimiter)
DOCUMENT_CACHE_SIZE = 1024  # distinct documents kept, parsed and validated (LRU)
MAX_CACHED_CHARS = 64 * 1024  # the contract's documents are 1-3 KiB


def selected_operation(query: str, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation `operation_name` selects in `query`; None when the
    document does not parse or does not name one operation. The GraphQL
    layer refuses such a request with the same parser, without running it."""
    if len(query) > MAX_CACHED_CHARS:
        return _selected(_parsed(query), operation_name)
    return _cached_selected(query, operation_name)


def operation_type(query: str, operation_name: str | None) -> OperationType | None:
    operation = selected_operation(query, operation_name)
    return None if operation is None else operation.operation


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _cached_selected(query: str, operation_name: str | None) -> OperationDefinitionNode | None:
    return _selected(_parsed(query), operation_name)


def _parsed(query: str) -> DocumentNode | None:
    try:
        return parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        return None


def _selected(
    document: DocumentNode | None, operation_name: str | None
) -> OperationDefinitionNode | None:
    return None if document is None else get_operation_ast(document, operation_name)

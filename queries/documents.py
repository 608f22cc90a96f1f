"""GraphQL documents, parsed and validated once per distinct text.

Clients send the same few documents over and over, and parsing plus
validation cost more than an answer from the public cache. Two caches, both
least-recently-used out first, shared by every request of the process:

- `CachedDocuments`, a schema extension: the parsed document by its text,
  and beside it its validation errors by (schema, rules) — validation
  depends on nothing else: what depends on the request runs after it, as a
  RequestCheck (queries.extensions);
- `read_operation`: what the HTTP layer must know before a request runs —
  is it a mutation (idempotency), a public card read (the public cache), a
  subscription sent by POST (refused)? Kept as a small summary, not a tree.

Memory stays bounded whatever is sent: a parsed tree of the 5000 tokens the
schema allows weighs ~3 MB, so only texts of at most `MAX_CACHED_CHARS`
(4× the longest contract document) are kept, and the parsed ones weigh at
most 256 KiB of text together (69 MiB of trees at worst, measured with the
densest texts); longer texts are
parsed every time. Parses use the schema's token limit, so a document too
long for the schema costs no more here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationType,
    parse,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.schema.base import BaseSchema

from observability import metrics
from queries.core_schema import validate_document

__all__ = [
    "DOCUMENTS",
    "MAX_CACHED_CHARS",
    "MAX_TOKENS",
    "CachedDocuments",
    "DocumentCache",
    "OperationSummary",
    "operation_type",
    "read_operation",
]

MAX_TOKENS = 5000  # the schema refuses longer documents
MAX_CACHED_CHARS = 8 * 1024  # the longest contract document is 1.7 KiB
SUMMARIES = 1024  # operation summaries kept: under 10 MB of keys


# --- for the schema -----------------------------------------------------------------


@dataclass
class _Entry:
    document: DocumentNode
    # validation errors by (schema, rules): the same text may serve two schemas
    validated: dict[tuple[BaseSchema, tuple[type[ASTValidationRule], ...]], list[GraphQLError]] = (
        field(default_factory=dict)
    )


class DocumentCache:
    """Parsed documents and their validation errors, least recently used out
    first, weighed by their text: a parsed tree costs ~600 bytes a token and a
    token takes at least two characters, so `max_chars` of text bound the
    memory (the default: under 80 MB however the texts are chosen)."""

    def __init__(self, max_chars: int = 256 * 1024) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[tuple[str, tuple[tuple[str, Any], ...]], _Entry] = OrderedDict()
        self._chars = 0
        self.hits = self.misses = self.validations = 0  # for tests and operators

    def parse(self, query: str, options: Mapping[str, Any]) -> DocumentNode:
        key = _key(query, options)
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            metrics.GRAPHQL_DOCUMENTS.labels("hit").inc()
            self._entries.move_to_end(key)
            return entry.document
        self.misses += 1
        kept = len(query) <= MAX_CACHED_CHARS
        metrics.GRAPHQL_DOCUMENTS.labels("miss" if kept else "uncached").inc()
        document = parse(query, **options)  # a syntax error is raised, not kept
        if kept:
            self._entries[key] = _Entry(document)
            self._chars += len(query)
            while self._chars > self.max_chars:
                (evicted, _), _ = self._entries.popitem(last=False)
                self._chars -= len(evicted)
        return document

    def validate(
        self,
        schema: BaseSchema,
        query: str,
        options: Mapping[str, Any],
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        entry = self._entries.get(_key(query, options))
        if entry is None or entry.document is not document:
            entry = None  # parsed elsewhere, or evicted since: validate, keep nothing
        errors = None if entry is None else entry.validated.get((schema, rules))
        if errors is None:
            self.validations += 1
            errors = validate_document(schema, document, rules)
            if entry is not None:
                entry.validated[(schema, rules)] = errors
        return errors

    @property
    def chars(self) -> int:
        return self._chars

    def __len__(self) -> int:
        return len(self._entries)


def _key(query: str, options: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return query, tuple(sorted(options.items()))


DOCUMENTS = DocumentCache()


class CachedDocuments(SchemaExtension):
    """Parse and validate each distinct document once (see DocumentCache).
    Validation is keyed by the rules too, which must therefore be built once
    per schema, not per request."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            # a document that does not parse is left to strawberry, which reports it
            with suppress(GraphQLError):
                context.graphql_document = DOCUMENTS.parse(context.query, context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # (already refused by a check that runs before validation: keep that answer alone)
        if (
            context.query is not None
            and document is not None
            and context.pre_execution_errors is None
        ):
            context.pre_execution_errors = DOCUMENTS.validate(
                context.schema,
                context.query,
                context.parse_options,
                document,
                context.validation_rules,
            )
        yield


# --- for the HTTP layer ---------------------------------------------------------------


@dataclass(frozen=True)
class OperationSummary:
    kind: OperationType
    # the root fields selected, or None when the root selects fragments
    root_fields: frozenset[str] | None


def read_operation(query: str, operation_name: str | None) -> OperationSummary | None:
    """The operation `operation_name` selects in `query`; None when the
    document does not parse or does not name one operation — the GraphQL
    layer refuses such a request with the same parser, without running it."""
    if len(query) <= MAX_CACHED_CHARS:
        return _summary(query, operation_name)
    return _summary.__wrapped__(query, operation_name)


def operation_type(query: str, operation_name: str | None) -> OperationType | None:
    summary = read_operation(query, operation_name)
    return None if summary is None else summary.kind


@lru_cache(maxsize=SUMMARIES)
def _summary(query: str, operation_name: str | None) -> OperationSummary | None:
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    selections = operation.selection_set.selections
    if not all(isinstance(s, FieldNode) for s in selections):
        return OperationSummary(operation.operation, None)
    names = frozenset(s.name.value for s in selections if isinstance(s, FieldNode))
    return OperationSummary(operation.operation, names)

"""Schema-wide policies as strawberry extensions: error masking and logging,
and the base of the per-request checks.

Errors that carry one of the contract's codes (or come from parsing and
validation) reach the caller as they are. Anything else is a bug or an
outage: the caller gets "Internal error" with the correlation id to quote,
and the log gets the exception under that same id — never the details.

Validation proper depends on the document only, so it is cached per document
(queries.documents.CachedDocuments). A check that depends on the request — its
variables, its operation name, its caller — is a `RequestCheck`: it runs on
every request, after the document passed validation, and never enters the
cached rules (a rule built per request would make every lookup a miss).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterator
from contextlib import suppress
from typing import Any

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLResolveInfo,
    OperationDefinitionNode,
    ValidationContext,
    VariableDefinitionNode,
    get_operation_ast,
)
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import LifecycleStep, MaskErrors, SchemaExtension
from strawberry.extensions.tracing import OpenTelemetryExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.execution import StreamExecutionResult

from queries.core_schema import validate_document
from queries.errors import (
    BAD_USER_INPUT,
    GRAPHQL_PARSE_FAILED,
    GRAPHQL_VALIDATION_FAILED,
    PUBLIC_CODES,
)

log = logging.getLogger("herald.graphql")

INTERNAL = "INTERNAL_SERVER_ERROR"


def is_unexpected(error: GraphQLError) -> bool:
    """True for errors raised by code that failed, not by a rule that refused."""
    if error.original_error is None or isinstance(error.original_error, GraphQLError):
        return False  # parse, validation and coercion errors: the caller's document is wrong
    code = (error.extensions or {}).get("code")
    return code not in PUBLIC_CODES


def _correlation_id(context: Any) -> str:
    return str(getattr(context, "correlation_id", "") or "")


# graphql-core's refusal past MAX_TOKENS, and what to do about it
_TOO_MANY_TOKENS = "tokens. Parsing aborted."
_VARIABLES_HINT = (
    " Send long inputs (such as recordPositions' positions) as variables: they are not tokens."
)


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Internal error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        correlation_id = _correlation_id(self.execution_context.context)
        masked.extensions = {"code": INTERNAL, "correlationId": correlation_id}
        return masked


_SUGGESTION = re.compile(r"\s*Did you mean .*\?$", re.DOTALL)


class HideSuggestions(MaskErrors):
    """Validation errors without graphql-core's "Did you mean 'reference'?":
    with introspection off (production), suggestions would let anyone read
    the schema back one guess at a time. The error itself stays."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: bool(_SUGGESTION.search(error.message)))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(
            _SUGGESTION.sub("", error.message),
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=error.extensions,
        )


# graphql-core's coercion message: "Variable '$input' has invalid value at .positions[0]: …"
_VARIABLE_PATH = re.compile(r"Variable '\$\w+' has invalid value(?: at )?((?:\.\w+|\[\d+\])*): ")
_PATH_SEGMENT = re.compile(r"\.(\w+)|\[(\d+)\]")


# strawberry's refusals of the operation a request names (none, or of a type not
# allowed there): the document does not provide what the request asks to run
_OPERATION_REFUSALS = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


def _code(error: GraphQLError) -> object:
    return (error.extensions or {}).get("code")


def _with(error: GraphQLError, extensions: dict[str, Any]) -> GraphQLError:
    """A copy of `error` with `extensions` added (the original may be cached and shared)."""
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), **extensions},
    )


def _variable_input(error: GraphQLError) -> dict[str, Any]:
    """BAD_USER_INPUT with the path of the variable value that failed coercion,
    shaped like queries.errors.bad_input (`field`, `problems`)."""
    node = error.nodes[0] if error.nodes else None
    if not isinstance(node, VariableDefinitionNode):
        return {"code": BAD_USER_INPUT}  # e.g. "Variable values are nested too deeply."
    path: list[str | int] = [node.variable.name.value]
    inner = _VARIABLE_PATH.match(error.message)
    if inner:
        path += [int(index) if index else name for name, index in _PATH_SEGMENT.findall(inner[1])]
    return {
        "code": BAD_USER_INPUT,
        "field": ".".join(str(p) for p in path),
        "problems": [{"path": path, "message": error.message}],
    }


class CodeEveryError(SchemaExtension):
    """No error goes out without `extensions.code` (CONTRACT.md, "Errors").

    graphql-core's own errors carry none; they are coded by the phase that
    refused the operation: a document that does not parse (the token limit
    included) `GRAPHQL_PARSE_FAILED`; one that does not validate (unknown
    fields, wrong arguments, the depth and alias limits)
    `GRAPHQL_VALIDATION_FAILED`; a variable value that cannot be coerced to
    its type `BAD_USER_INPUT` with the variable's path in `field`. An
    uncoded error raised while resolving is a bug: `INTERNAL_SERVER_ERROR`.
    Codes already set are kept.

    List it first: its `on_operation` then finishes last, after the masking
    extensions, and sees the errors as they go out.
    """

    def __init__(self) -> None:
        self._refused_by: str | None = None  # the phase that refused the operation

    def on_parse(self) -> Iterator[None]:
        yield
        errors = self.execution_context.pre_execution_errors
        if errors:
            self._refused_by = GRAPHQL_PARSE_FAILED
            for error in errors:  # new per request (never cached): coded before masking
                if not _code(error):
                    error.extensions = {**(error.extensions or {}), "code": GRAPHQL_PARSE_FAILED}
                if error.message.endswith(_TOO_MANY_TOKENS):
                    error.message += _VARIABLES_HINT

    def on_validate(self) -> Iterator[None]:
        yield
        if self.execution_context.pre_execution_errors:
            self._refused_by = GRAPHQL_VALIDATION_FAILED

    def on_operation(self) -> Iterator[None]:
        yield
        self._code_result(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """A subscription's results (over the WebSocket) are sent as they come,
        before the operation ends: each is coded on its way out."""
        self._code_result(result)
        yield

    def _code_result(self, result: object) -> None:
        errors: list[GraphQLError] | None = getattr(result, "errors", None)
        if result is None or not errors or all(_code(error) for error in errors):
            return
        result.errors = [  # type: ignore[attr-defined]
            error if _code(error) else self._coded(error) for error in errors
        ]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        if self._refused_by is not None:
            return _with(error, {"code": self._refused_by})
        correlation_id = _correlation_id(self.execution_context.context)
        if isinstance(error.original_error, _OPERATION_REFUSALS):
            # (over HTTP these are 400 problems; a stream reports them as errors)
            return _with(error, {"code": GRAPHQL_VALIDATION_FAILED})
        if is_unexpected(error):  # an exception (HeraldSchema logged it): masked as such
            return _with(error, {"code": INTERNAL, "correlationId": correlation_id})
        if error.path is None:  # graphql-core refused it before any resolver ran: variables
            return _with(error, _variable_input(error))
        log.error("uncoded error [correlation id %s] at %s: %s", correlation_id, error.path, error)
        return _with(error, {"code": INTERNAL, "correlationId": correlation_id})


def code_leftovers(errors: list[GraphQLError], correlation_id: str) -> list[GraphQLError]:
    """`errors` with every uncoded one answered as INTERNAL_SERVER_ERROR ("Internal
    error", the correlation id to quote): the net for errors that reached no
    extension — strawberry turns an exception raised around the operation (an
    extension or a validation rule that failed) into an error after the
    extensions ran. HeraldSchema.process_errors has logged it already."""
    masked = {"code": INTERNAL, "correlationId": correlation_id}
    return [
        error if _code(error) else GraphQLError("Internal error", extensions=masked)
        for error in errors
    ]


def tolerant(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """`rule` (one that does all its work when built, like strawberry's depth
    limit), skipped on a document it cannot walk: the depth limit raises
    KeyError on an unknown fragment and ValueError on an empty selection —
    documents that other rules refuse (KnownFragmentNames, ...) or that have
    no depth to limit."""

    class Tolerant(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            with suppress(KeyError, ValueError):
                rule(context)

    return Tolerant


class HeraldSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors with the request's correlation id; refusals are not errors."""
        context = execution_context.context if execution_context else None
        for error in errors:
            if is_unexpected(error):
                log.error(
                    "unexpected error [correlation id %s] at %s",
                    _correlation_id(context),
                    error.path,
                    exc_info=error.original_error,
                )


class RequestCheck(SchemaExtension):
    """A check of one request against the operation it runs (see the module doc).

    Subclasses implement `check`; list them after CachedDocuments so the
    document's validation comes from the cache. Placed anywhere else, the
    check validates the document itself first: a check never runs on, or
    lets through, a document that fails validation.

    A check with `before_validation` (listed before CachedDocuments) runs
    first instead, and a refusal then stands alone: the caller learns
    nothing of the schema from validation errors.
    """

    before_validation = False

    def check(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> list[GraphQLError]:
        raise NotImplementedError

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        operation = (
            None if document is None else get_operation_ast(document, context.operation_name)
        )
        if document is None or operation is None:
            pass  # strawberry refuses the request itself
        elif self.before_validation:
            if context.pre_execution_errors is None:  # nothing refused it yet
                context.pre_execution_errors = self.check(document, operation) or None
        else:
            if context.pre_execution_errors is None:
                context.pre_execution_errors = validate_document(
                    context.schema, document, context.validation_rules
                )
            if not context.pre_execution_errors:
                refused = self.check(document, operation)
                if refused:
                    # a new list: the cached validation result is shared by requests
                    context.pre_execution_errors = refused
        yield


class GraphQLSpans(OpenTelemetryExtension):
    """strawberry's OpenTelemetry extension, with what it would leak left out:
    the operation span (`{type} {name}`, as OpenTelemetry's GraphQL semantic
    conventions name it) carries `graphql.operation.type` and
    `graphql.operation.name` but not the document (an inline literal is a
    value: an e-mail address, a push token). No span per resolver: strawberry
    then wraps every field of every answer in an awaited middleware, and the
    uncached card list served 0.29× its untraced rate (bench/telemetry_overhead);
    the store and broker spans under the operation span show where its time
    goes. Should resolver spans come back, `arg_filter` drops every argument
    (a variable's value never becomes an attribute). On only when tracing is
    (app.py)."""

    # SchemaExtension's own resolve: strawberry adds no resolver middleware
    resolve = SchemaExtension.resolve  # type: ignore[assignment]

    def __init__(self, *, execution_context: ExecutionContext | None = None) -> None:
        super().__init__(execution_context=execution_context, arg_filter=_no_arguments)

    def on_operation(self) -> Generator[None, None, None]:
        span = self._tracer.start_span("GraphQL")
        self._span_holder[LifecycleStep.OPERATION] = span
        yield
        context = self.execution_context
        name = context.operation_name
        try:
            kind = context.operation_type.value
        except Exception:  # the document did not parse: no operation to name
            kind = None
        if kind is not None:
            span.set_attribute("graphql.operation.type", kind)
        if name:
            span.set_attribute("graphql.operation.name", name)
        span.update_name(" ".join(part for part in (kind, name) if part) or "GraphQL")
        span.end()


def _no_arguments(args: dict[str, Any], info: GraphQLResolveInfo[Any]) -> dict[str, Any]:
    return {}

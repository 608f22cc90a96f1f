"""One place that turns Herald's errors into GraphQL errors with `extensions.code`.

`DomainErrors` is the field extension every root field of the schema carries:
a resolver raises Herald's own errors and never maps them itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver
from strawberry.types import Info

from domain.consistency import MalformedToken
from domain.errors import Forbidden, IllegalTransition, NotFound, VersionConflict
from domain.ports import StoreUnavailable
from domain.validation import InvalidInput

BAD_USER_INPUT = "BAD_USER_INPUT"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
NOT_CAUGHT_UP = "NOT_CAUGHT_UP"
IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
# Not in the contract's list: the store is down; retry later (a mutation, with the same key).
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"

# Errors with one of these codes are the caller's to see; anything else is masked.
PUBLIC_CODES = frozenset(
    {
        BAD_USER_INPUT,
        UNAUTHENTICATED,
        FORBIDDEN,
        NOT_FOUND,
        CONFLICT,
        NOT_CAUGHT_UP,
        IDEMPOTENCY_KEY_REUSED,
        REQUEST_IN_PROGRESS,
        SERVICE_UNAVAILABLE,
        GRAPHQL_VALIDATION_FAILED,
        GRAPHQL_PARSE_FAILED,
    }
)


def coded(message: str, code: str, **extra: object) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extra})


def bad_input(error: InvalidInput, prefix: tuple[str | int, ...] = ("input",)) -> GraphQLError:
    problems = [
        {"path": [*prefix, *problem.path], "message": problem.message} for problem in error.problems
    ]
    first = problems[0] if problems else {"path": list(prefix), "message": "invalid input"}
    return coded(
        f"{'.'.join(str(p) for p in first['path'])}: {first['message']}"
        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
        BAD_USER_INPUT,
        field=".".join(str(p) for p in first["path"]),
        problems=problems,
    )


@asynccontextmanager
async def domain_errors_as_graphql() -> AsyncIterator[None]:
    try:
        yield
    except InvalidInput as exc:
        raise bad_input(exc) from exc
    except NotFound as exc:
        raise coded(str(exc), NOT_FOUND) from exc
    except (VersionConflict, IllegalTransition) as exc:
        raise coded(str(exc), CONFLICT) from exc
    except Forbidden as exc:
        raise coded(str(exc), FORBIDDEN) from exc
    except StoreUnavailable as exc:
        # Not "nothing was changed": a write whose answer was lost may have been
        # stored. A retry under the same Idempotency-Key finds it (it runs once).
        raise coded(
            "the store is unavailable; retry (a mutation with the same Idempotency-Key: "
            "it takes effect at most once)",
            SERVICE_UNAVAILABLE,
        ) from exc
    except MalformedToken as exc:
        raise coded(str(exc), BAD_USER_INPUT, field="consistencyToken") from exc


class DomainErrors(FieldExtension):
    """A field extension: the field's resolver may raise Herald's errors
    (InvalidInput, NotFound, VersionConflict, IllegalTransition, Forbidden,
    StoreUnavailable, MalformedToken); the caller gets them as coded GraphQL
    errors (`domain_errors_as_graphql`)."""

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: Info, **kwargs: Any
    ) -> Any:
        async with domain_errors_as_graphql():
            return await next_(source, info, **kwargs)

"""The one place Herald reaches below strawberry to graphql-core.

Validation cached per document (queries.documents), the request checks
(queries.extensions.RequestCheck) and the cost limit (queries.cost) work on
the graphql-core schema a strawberry schema wraps. Strawberry 0.341 has no
public accessor for it — its own ValidationCache extension reads the private
`Schema._schema` too — so the access is confined here, with strawberry's
validation (graphql-core's rules plus its Maybe/oneOf rules), and an upgrade
that moves it breaks one module.
"""

from __future__ import annotations

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema
from strawberry.schema.base import BaseSchema

__all__ = ["core_schema", "validate_document"]


def core_schema(schema: BaseSchema) -> GraphQLSchema:
    """The graphql-core schema behind `schema`."""
    core: GraphQLSchema = schema._schema  # type: ignore[attr-defined]
    return core


def validate_document(
    schema: BaseSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """Validate `document` against `schema` as strawberry itself does."""
    from strawberry.schema.schema import validate_document as strawberry_validate  # cycle

    return strawberry_validate(core_schema(schema), document, rules)

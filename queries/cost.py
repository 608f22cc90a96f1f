"""The cost limit: what an operation may ask of the store, before it runs.

Every field costs 1; a connection field (one with a `first` argument) costs
1 plus `first` times its selection, since it may return that many items —
with `first` read from the document or the request's variables (default 20,
counted at most 100: more is refused by the field itself). Fragments count
where they are spread. An operation over the limit is refused at validation
with `BAD_USER_INPUT`, `reason: COST_LIMIT_EXCEEDED`, its cost and the limit.

With the default limit every operation of the clients' contract passes at
`first: 100`; three aliased pages of 100 cards do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_object_type,
)
from graphql.type import (
    SchemaMetaFieldDef,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    is_interface_type,
)

from queries.core_schema import core_schema
from queries.errors import BAD_USER_INPUT
from queries.extensions import RequestCheck
from queries.paging import DEFAULT_PAGE, MAX_PAGE

__all__ = ["COST_LIMIT_EXCEEDED", "DEFAULT_MAX_COST", "CostLimiter", "operation_cost"]

DEFAULT_MAX_COST = 5_000
COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"
PAGE_ARGUMENT = "first"


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of `operation` (of `document`) with these variable values."""
    return _Costing(schema, document, operation, variables or {}).operation()


class _Costing:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.operation_node = operation
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.defaults = {
            v.variable.name.value: v.default_value
            for v in operation.variable_definitions or ()
            if v.default_value is not None
        }
        # A fragment's cost does not depend on where it is spread: each is
        # costed once, so nested spreads cannot make the costing exponential.
        self.fragment_costs: dict[str, int] = {}
        self.in_progress: set[str] = set()

    def operation(self) -> int:
        root = self.schema.get_root_type(self.operation_node.operation)
        if root is None:
            return 0
        return self.selection(root, self.operation_node.selection_set)

    def selection(self, parent: GraphQLNamedType, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += self.field(parent, node)
            elif isinstance(node, InlineFragmentNode):
                condition = (
                    self.schema.get_type(node.type_condition.name.value)
                    if node.type_condition
                    else parent
                )
                total += self.selection(condition or parent, node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                total += self.fragment(node.name.value)
        return total

    def fragment(self, name: str) -> int:
        if name in self.fragment_costs:
            return self.fragment_costs[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.in_progress:
            return 0  # unknown or cyclic: validation reports it
        self.in_progress.add(name)
        condition = self.schema.get_type(definition.type_condition.name.value)
        cost = 0 if condition is None else self.selection(condition, definition.selection_set)
        self.in_progress.discard(name)
        self.fragment_costs[name] = cost
        return cost

    def field(self, parent: GraphQLNamedType, node: FieldNode) -> int:
        definition = _field_definition(self.schema, parent, node.name.value)
        if definition is None:
            return 1  # unknown field: validation reports it
        child = get_named_type(definition.type)
        inner = self.selection(child, node.selection_set)
        multiplier = self.page(node) if PAGE_ARGUMENT in definition.args else 1
        return 1 + multiplier * inner

    def page(self, node: FieldNode) -> int:
        value: Any = DEFAULT_PAGE
        for argument in node.arguments or ():
            if argument.name.value != PAGE_ARGUMENT:
                continue
            literal = argument.value
            if isinstance(literal, VariableNode):
                name = literal.name.value
                if name in self.variables:
                    value = self.variables[name]  # Any: checked below
                elif isinstance(self.defaults.get(name), IntValueNode):
                    value = int(self.defaults[name].value)  # type: ignore[union-attr]
            elif isinstance(literal, IntValueNode):
                value = int(literal.value)
        size = value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_PAGE
        return max(0, min(size, MAX_PAGE))


def _field_definition(
    schema: GraphQLSchema, parent: GraphQLNamedType, name: str
) -> GraphQLField | None:
    if name == "__typename":
        return TypeNameMetaFieldDef
    if parent is schema.query_type:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
    if is_object_type(parent) or is_interface_type(parent):
        fields: Mapping[str, GraphQLField] = parent.fields  # type: ignore[attr-defined]
        return fields.get(name)
    return None


class CostLimiter(RequestCheck):
    """Refuse operations that cost more than `max_cost` (see the module doc).

    A request check, not a validation rule: the cost depends on the variables."""

    def __init__(self, max_cost: int = DEFAULT_MAX_COST) -> None:
        assert max_cost > 0, "max_cost must be positive"
        self.max_cost = max_cost

    def check(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> list[GraphQLError]:
        context = self.execution_context
        cost = operation_cost(core_schema(context.schema), document, operation, context.variables)
        if cost <= self.max_cost:
            return []
        return [
            GraphQLError(
                f"query cost {cost} exceeds the limit of {self.max_cost}: "
                "ask for smaller pages or fewer fields",
                operation,
                extensions={
                    "code": BAD_USER_INPUT,
                    "reason": COST_LIMIT_EXCEEDED,
                    "cost": cost,
                    "maxCost": self.max_cost,
                },
            )
        ]

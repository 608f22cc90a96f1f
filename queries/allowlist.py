"""Persisted queries: an allowlist of the clients' operations, and its enforcement.

`python -m queries.allowlist` (or `herald allowlist`) reads the contract's
operation files and writes a JSON object mapping the sha256 of each
operation's *normalized* document — the operation and the fragments it uses,
printed canonically — to that document. With `HERALD_PERSISTED_QUERIES`
naming such a file, a production server refuses, for anonymous callers, any
operation whose normalized document is not in the list: the public can run
what the website runs, and nothing else. A client may also send only the
hash (`extensions.persistedQuery.sha256Hash`, the query left out).

Normalizing means a client may send one operation or the whole file (with
`operationName`), with any whitespace and comments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    parse,
    print_ast,
    visit,
)
from graphql.language import Visitor

from queries.errors import FORBIDDEN
from queries.extensions import RequestCheck

__all__ = [
    "NOT_ALLOWED",
    "PersistedQueriesOnly",
    "build_allowlist",
    "load_allowlist",
    "normalized_operation",
]

NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
# The clients' operations: the project's own copy of the contract, in the repository.
DEFAULT_OPERATIONS = Path(__file__).resolve().parents[1] / "contract" / "operations"


class AllowlistError(ValueError):
    """The allowlist file is missing or malformed."""


def fingerprint(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
        self.names.append(node.name.value)


def _spread_names(node: OperationDefinitionNode | FragmentDefinitionNode) -> list[str]:
    spreads = _Spreads()
    visit(node, spreads)
    return spreads.names


def normalized_operation(document: DocumentNode, operation: OperationDefinitionNode) -> str:
    """The operation with the fragments it uses (transitively, sorted by name),
    printed canonically: the same text whatever else the document held."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    used: dict[str, FragmentDefinitionNode] = {}
    pending = _spread_names(operation)
    while pending:
        name = pending.pop()
        if name in used or name not in fragments:
            continue
        used[name] = fragments[name]
        pending.extend(_spread_names(fragments[name]))
    kept = (operation, *(used[name] for name in sorted(used)))
    return print_ast(DocumentNode(definitions=kept))


def _operations(document: DocumentNode) -> Iterator[OperationDefinitionNode]:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            yield definition


def build_allowlist(files: Sequence[Path]) -> dict[str, str]:
    """sha256 -> normalized document, for every operation of these files."""
    allowlist: dict[str, str] = {}
    for path in files:
        document = parse(path.read_text())
        for operation in _operations(document):
            text = normalized_operation(document, operation)
            allowlist[fingerprint(text)] = text
    return dict(sorted(allowlist.items()))


def load_allowlist(path: str | Path) -> dict[str, str]:
    """Read an allowlist file, checking that each key is its document's hash."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AllowlistError(f"cannot read the persisted-query allowlist {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and fingerprint(v) == k for k, v in data.items()
    ):
        raise AllowlistError(
            f"{path} is not an allowlist (sha256 -> document); regenerate it with "
            "`python -m queries.allowlist`"
        )
    return data


class PersistedQueriesOnly(RequestCheck):
    """Refuse operations outside `allowed` when `applies(context)` holds.

    A request check, not a validation rule: it depends on the caller. It
    runs before validation: an unlisted document gets this refusal alone,
    never validation errors that would describe the schema to the public."""

    before_validation = True

    def __init__(self, allowed: Mapping[str, str], applies: Callable[[Any], bool]) -> None:
        self.allowed = allowed
        self.applies = applies

    def check(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> list[GraphQLError]:
        if not self.applies(self.execution_context.context):
            return []
        if fingerprint(normalized_operation(document, operation)) in self.allowed:
            return []
        return [
            GraphQLError(
                "this operation is not one of the registered (persisted) "
                "operations that anonymous callers may run",
                operation,
                extensions={"code": FORBIDDEN, "reason": NOT_ALLOWED},
            )
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m queries.allowlist",
        description="Write the persisted-query allowlist (sha256 -> document) of the "
        "clients' operation files.",
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help=f"operation files or folders of *.graphql (default: {DEFAULT_OPERATIONS})",
    )
    parser.add_argument("--output", "-o", default="-", help="where to write the JSON (- = stdout)")
    args = parser.parse_args(argv)
    files: list[Path] = []
    for path in args.files or [DEFAULT_OPERATIONS]:
        files.extend(sorted(path.glob("*.graphql")) if path.is_dir() else [path])
    if not files:
        parser.error(
            f"no operation files found in {', '.join(map(str, args.files or [DEFAULT_OPERATIONS]))}"
        )
    text = json.dumps(build_allowlist(files), indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} ({len(files)} files)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

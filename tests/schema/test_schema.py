"""schema.graphql is exported from the code, and the clients' operations
validate against it unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import DocumentNode, OperationDefinitionNode, parse, validate
from graphql import build_schema as build_sdl

from queries.schema import build_schema
from tests.support import operation_document

# Operations whose capability has landed; the rest join as their issues land.
IMPLEMENTED = {
    "website": {"WebsiteCards", "WebsiteCard"},
    "mobile": {"MobileMyNotices", "MobileNotice", "MobileAcknowledge", "MobileNoticeFeed"},
    "portal": {
        "PortalAnnounce",
        "PortalAmend",
        "PortalCancel",
        "PortalApprove",
        "PortalRecordPositions",
        "PortalCard",
        "PortalDrafts",
        "PortalProjections",
    },
}


def test_schema_graphql_matches_the_code(repo_root: Path) -> None:
    exported = build_schema().as_str() + "\n"
    on_disk = (repo_root / "schema.graphql").read_text()
    assert on_disk == exported, (
        "schema.graphql drifted from the code: run `herald export-schema -o schema.graphql`"
    )


@pytest.mark.parametrize("client", sorted(IMPLEMENTED))
def test_contract_operations_validate(client: str, repo_root: Path) -> None:
    schema = build_sdl((repo_root / "schema.graphql").read_text())
    document = parse(operation_document(client))
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    names = {d.name.value for d in operations if d.name}
    assert IMPLEMENTED[client] <= names, "the contract lost an operation we rely on"
    # Validate each implemented operation alone with the fragments it uses.
    for name in sorted(IMPLEMENTED[client]):
        kept = [
            d
            for d in document.definitions
            if not isinstance(d, OperationDefinitionNode) or (d.name and d.name.value == name)
        ]
        single = DocumentNode(definitions=tuple(kept))
        errors = validate(schema, single)
        unused_fragment = [e for e in errors if "is never used" in e.message]
        real = [e for e in errors if e not in unused_fragment]
        assert not real, f"{client}.{name}: {[e.message for e in real]}"

"""The contract's `channels/` operations (the repository's copy) validate
against the exported schema.graphql, unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from tests.delivery.support import CHANNELS


@pytest.mark.parametrize("client", ["mobile", "portal"])
def test_channel_operations_validate_against_the_schema(client: str, repo_root: Path) -> None:
    schema = build_schema((repo_root / "schema.graphql").read_text())
    document = parse((CHANNELS / f"{client}.graphql").read_text())
    assert validate(schema, document) == []
    assert len(document.definitions) >= 2

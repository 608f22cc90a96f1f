"""What the delivery suites share: the contract's channel operations (the
repository's copy) and token helpers."""

from __future__ import annotations

import uuid
from pathlib import Path

from domain.principal import ROLE_OPERATOR, SCOPE_NOTICES_READ
from tests.support import GraphQLClient

CHANNELS = Path(__file__).resolve().parents[2] / "contract" / "channels"
MOBILE = (CHANNELS / "mobile.graphql").read_text()
PORTAL = (CHANNELS / "portal.graphql").read_text()


def fresh(prefix: str) -> str:
    """An id unique to one test: suites share a module's database."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def depositor(api: GraphQLClient, *accounts: str) -> str:
    return api.token(fresh("depositor"), accounts=accounts, scopes=(SCOPE_NOTICES_READ,))


def operator(api: GraphQLClient) -> str:
    return api.token(fresh("olga"), ROLE_OPERATOR)

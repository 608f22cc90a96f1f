"""What the contract suites share: a fresh MongoDB database per test, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document, connect


@pytest.fixture
async def mongo_db(mongo_uri: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()

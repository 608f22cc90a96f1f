"""Collection-level operations a rebuild needs: copy names, atomic switch-over."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated


async def replace_collection(db: AsyncDatabase[Document], source: str, target: str) -> None:
    """Atomically make `source` the collection readers know as `target`.

    renameCollection with dropTarget swaps in one step: a reader sees the old
    collection or the new one, never a missing or half-filled one.
    """
    async with translated():
        await db.client.admin.command(
            "renameCollection", f"{db.name}.{source}", to=f"{db.name}.{target}", dropTarget=True
        )


async def drop(db: AsyncDatabase[Document], name: str) -> None:
    async with translated():
        await db.drop_collection(name)

"""MongoNoticeStats: counts of depositor notices per corporate action."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated

NOTICES = "notices"


class MongoNoticeStats:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._notices = db[NOTICES]

    async def by_action(self, action_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(total, delivered, acknowledged) per corporate action, in one round trip."""
        pipeline: list[Document] = [
            {"$match": {"corporateActionId": {"$in": list(action_ids)}}},
            {
                "$group": {
                    "_id": "$corporateActionId",
                    "total": {"$sum": 1},
                    "delivered": {"$sum": {"$cond": [{"$ifNull": ["$deliveredAt", False]}, 1, 0]}},
                    "acknowledged": {
                        "$sum": {"$cond": [{"$ifNull": ["$acknowledgedAt", False]}, 1, 0]}
                    },
                }
            },
        ]
        async with translated():
            cursor = await self._notices.aggregate(pipeline)
            rows = [row async for row in cursor]
        return {
            row["_id"]: (int(row["total"]), int(row["delivered"]), int(row["acknowledged"]))
            for row in rows
        }
